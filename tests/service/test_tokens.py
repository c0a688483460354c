"""API tokens on SQLite and PostgreSQL: made once, stored as hashes, revoked and expired for good."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import ApiToken
from service.db.session import session_scope
from service.errors import InvalidRequest
from service.tokens import (
    authenticate,
    create_token,
    expiry,
    hash_token,
    list_tokens,
    parse_scopes,
    revoke_token,
)


def test_a_token_is_shown_once_and_stored_as_its_hash(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        token, secret = create_token(session, "ci-bot", ["read", "write"], expires_in=timedelta(days=90))
    assert secret.startswith("cs_") and len(secret) == 46
    with session_scope(session_factory) as session:
        [stored] = list_tokens(session)
        assert (stored.name, stored.scopes, stored.prefix) == ("ci-bot", ["read", "write"], secret[:9])
        assert stored.token_hash == hash_token(secret) and secret not in (stored.token_hash, stored.prefix)
        assert timedelta(days=89) < stored.expires_at - stored.created_at <= timedelta(days=90)
        principal = authenticate(session, secret)
    assert principal is not None and principal.name == "ci-bot" and principal.can("write")
    assert not principal.can("admin")


def test_revoked_expired_and_unknown_tokens_authenticate_no_one(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        _, revoked = create_token(session, "old", ["admin"])
        _, expired = create_token(session, "temp", ["admin"], expires_in=timedelta(minutes=1))
        revoke_token(session, "old")
        session.execute(update(ApiToken).where(ApiToken.name == "temp").values(expires_at=now()))
    with session_scope(session_factory) as session:
        assert authenticate(session, revoked) is None and authenticate(session, expired) is None
        assert authenticate(session, "cs_" + "a" * 43) is None and authenticate(session, "Bearer x") is None
        assert authenticate(session, "cs_" + "a" * 10_000) is None


def test_last_use_is_written_at_most_once_a_minute(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        _, secret = create_token(session, "busy", ["read"])
    with session_scope(session_factory) as session:
        authenticate(session, secret)
        first = list_tokens(session)[0].last_used_at
        authenticate(session, secret)
        assert list_tokens(session)[0].last_used_at == first is not None


@pytest.mark.parametrize(("name", "scopes", "words"), [
    ("", "read", "1 to 100 letters"), ("two words", "read", "1 to 100 letters"), ("-x", "read", "starting with"),
])
def test_a_bad_name_is_refused_with_what_is_allowed(session_factory: sessionmaker[Session], name: str,
                                                    scopes: str, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        with session_scope(session_factory) as session:
            create_token(session, name, parse_scopes(scopes))


def test_names_are_unique_and_revoking_an_unknown_one_lists_the_known(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        create_token(session, "alice", ["read"])
    with pytest.raises(InvalidRequest, match="a token named 'alice' exists"):
        with session_scope(session_factory) as session:
            create_token(session, "alice", ["read"])
    with pytest.raises(InvalidRequest, match=r"no token named 'bob'; the tokens are \['alice'\]"):
        with session_scope(session_factory) as session:
            revoke_token(session, "bob")


def test_scopes_and_lifetimes_are_read_strictly() -> None:
    assert parse_scopes("write, read") == ["read", "write"]
    for bad in ("", "root", "read,root", ","):
        with pytest.raises(InvalidRequest, match="scopes must be some of"):
            parse_scopes(bad)
    assert (expiry("90d"), expiry("12h"), expiry("30m")) == (timedelta(days=90), timedelta(hours=12),
                                                             timedelta(minutes=30))
    for bad in ("90", "1y", "-1d", "d"):
        with pytest.raises(InvalidRequest, match="a duration such as 90d"):
            expiry(bad)
