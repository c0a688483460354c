"""Who may call what: every route declares the scope it needs, as a dependency.

`READ`, `WRITE`, `ADMIN` and `PUBLIC` are the decisions a route can make (tests/service/api/
test_auth.py walks the route table and fails on a route with none). With `CLIPSWEEP_AUTH=token`
a request presents `Authorization: Bearer cs_…`; a dashboard page or a GET may instead carry the
sign-in cookie, which is HttpOnly and SameSite=Strict and never authorizes a write. With auth off
(loopback only) everyone acts as an anonymous admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.api.deps import SessionDep
from service.errors import Forbidden, NotAuthenticated
from service.tokens import ANONYMOUS, Principal, authenticate

COOKIE = "clipsweep_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRequired(NotAuthenticated):
    """A dashboard page asked for without a valid sign-in: answered with a redirect to /sign-in."""


def presented_token(request: Request) -> str | None:
    """The token a request carries: its Bearer header, or, for a read, the sign-in cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.method in SAFE_METHODS:
        return request.cookies.get(COOKIE)
    return None


class Scope:
    """A route's auth decision: the scope it needs, or None for a public route."""

    def __init__(self, needed: str | None, *, page: bool = False) -> None:
        self.needed, self.page = needed, page

    def __repr__(self) -> str:
        return f"Scope({self.needed!r}{', page' if self.page else ''})"

    def __call__(self, request: Request, session: SessionDep) -> Principal:
        if request.app.state.settings.auth == "off":
            return ANONYMOUS
        if self.needed is None:
            return Principal(name=None, scopes=frozenset())
        missing = SignInRequired if self.page else NotAuthenticated
        secret = presented_token(request)
        if secret is None and request.cookies.get(COOKIE) and request.method not in SAFE_METHODS:
            raise missing(f"a dashboard sign-in only reads; {request.method} {request.url.path} needs an API token "
                          "with the write scope, as `Authorization: Bearer <token>` (the CLI sends one)")
        if secret is None:
            raise missing(f"{request.method} {request.url.path} needs an API token with scope {self.needed!r}: send "
                          "`Authorization: Bearer <token>`; `clipsweep token create` makes one")
        principal = authenticate(session, secret)
        if principal is None:
            raise missing("the token is unknown, revoked or expired; `clipsweep token list` shows the tokens")
        if not principal.can(self.needed):
            raise Forbidden(f"token {principal.name!r} has scopes {sorted(principal.scopes)}; "
                            f"{request.method} {request.url.path} needs {self.needed!r}")
        return principal


PUBLIC, READ, WRITE, ADMIN = Scope(None), Scope("read"), Scope("write"), Scope("admin")
READ_PAGE = Scope("read", page=True)

Reader = Annotated[Principal, Depends(READ)]
Writer = Annotated[Principal, Depends(WRITE)]
PageReader = Annotated[Principal, Depends(READ_PAGE)]


def require_owner(principal: Principal, owner: str | None, what: str, verb: str) -> None:
    """A write token acts on what it created; an admin token, or anyone with auth off, on anything."""
    if principal.name is not None and not principal.can("admin") and owner != principal.name:
        by = f"token {owner!r}" if owner else "no token"
        raise Forbidden(f"{what} was created by {by}; token {principal.name!r} may {verb} only what it "
                        f"created (an admin token may {verb} any)")
