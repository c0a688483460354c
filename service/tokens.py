"""API tokens: create one (shown once), list them, revoke one, and tell who a presented token is.

A token is `cs_` and 43 URL-safe characters (256 random bits): the prefix lets secret scanners and
people recognize it. Only its SHA-256 is stored (a token that random needs no slow hash), with the
first characters as a display prefix. Scopes nest: `admin` can do what `write` can, `write` what
`read` can.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.clock import now
from service.db.models import ApiToken
from service.errors import InvalidRequest

SCOPES = ("read", "write", "admin")
PREFIX = "cs_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# last_used_at is written at most this often per token: a busy client must not turn every read
# into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a token's name and scopes, or, with auth off, nobody in particular."""

    name: str | None
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return any(SCOPES.index(held) >= SCOPES.index(scope) for held in self.scopes)


ANONYMOUS = Principal(name=None, scopes=frozenset({"admin"}))  # auth off: loopback only


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(text: str) -> list[str]:
    """`read,write` as a list of known scopes, in their order."""
    given = [s.strip() for s in text.split(",") if s.strip()]
    if not given or any(s not in SCOPES for s in given):
        raise InvalidRequest([{"loc": ["scopes"], "type": "value_error",
                               "msg": f"scopes must be some of {list(SCOPES)}, comma-separated; got {text!r}"}],
                             source="body")
    return [s for s in SCOPES if s in given]


def create_token(session: Session, name: str, scopes: list[str], *,
                 expires_in: timedelta | None = None) -> tuple[ApiToken, str]:
    """Store a new token and return it with its secret, which is never stored nor shown again."""
    problems = []
    if not NAME.fullmatch(name):
        problems.append({"loc": ["name"], "type": "value_error", "msg": (
            f"a token's name is 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit; "
            f"got {name!r}")})
    elif session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        problems.append({"loc": ["name"], "type": "value_error",
                         "msg": f"a token named {name!r} exists; revoke it or choose another name"})
    if problems:
        raise InvalidRequest(problems, source="body")
    secret = PREFIX + secrets.token_urlsafe(32)
    created = now()
    token = ApiToken(name=name, token_hash=hash_token(secret), prefix=secret[:len(PREFIX) + 6], scopes=scopes,
                     created_at=created, expires_at=created + expires_in if expires_in else None)
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def revoke_token(session: Session, name: str) -> ApiToken:
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        known = [t.name for t in list_tokens(session)]
        raise InvalidRequest([{"loc": ["name"], "type": "value_error",
                               "msg": f"no token named {name!r}; the tokens are {known}"}], source="body")
    if token.revoked_at is None:
        token.revoked_at = now()
    return token


def authenticate(session: Session, secret: str) -> Principal | None:
    """The principal a presented token stands for, or None if it is unknown, revoked or expired."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    moment = now()
    if token is None or token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= moment):
        return None
    if token.last_used_at is None or moment - token.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=moment))
        session.commit()
    return Principal(name=token.name, scopes=frozenset(token.scopes))


def expiry(text: str) -> timedelta:
    """`90d`, `12h` or `30m` as a duration (what `clipsweep token create --expires` takes)."""
    match = re.fullmatch(r"(\d{1,6})([dhm])", text.strip())
    if not match:
        raise InvalidRequest([{"loc": ["expires"], "type": "value_error",
                               "msg": f"give a duration such as 90d, 12h or 30m; got {text!r}"}], source="body")
    amount, unit = int(match.group(1)), match.group(2)
    return {"d": timedelta(days=amount), "h": timedelta(hours=amount), "m": timedelta(minutes=amount)}[unit]


def is_expired(token: ApiToken, moment: datetime | None = None) -> bool:
    return token.expires_at is not None and token.expires_at <= (moment or now())
