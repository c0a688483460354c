"""What keeps a request from hurting the service or its users: only the configured host names are
answered (DNS rebinding), no browser may write from another site (cross-site forms), pages load
nothing but their own files (Content-Security-Policy), a body is bounded (413), and while the
database is away every answer is a clear 503, never a bare 500."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RETRY_AFTER_SECONDS = 5
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Scripts, styles, images and requests from this origin only (plotly.js draws with inline styles);
# no frame may embed a page, no form may post elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
                                "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """Add SECURITY_HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


class SameOriginWrites:
    """Refuse a write a browser sends from another site, or another port of this one: a page
    elsewhere must not cancel a sweep with a form, whether or not auth is on. Browsers say where
    a request comes from (Sec-Fetch-Site, Origin); clients that are not browsers send neither and
    pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            site = headers.get("sec-fetch-site")
            origin = headers.get("origin")
            # The host alone: behind a TLS proxy the scheme seen here is not the browser's.
            foreign = origin is not None and urlsplit(origin).netloc != headers.get("host")
            if (site is not None and site not in ("same-origin", "none")) or foreign:
                response = JSONResponse(status_code=403, content={"detail": (
                    f"a browser may not send {scope['method']} here from another site ({origin or site}); "
                    "use the API from a script or the CLI")})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse a request body over `max_bytes` with 413, whether it says its length up front or
    streams it. The body is read here, up to the limit and no further, and handed on whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            more = message.get("more_body", False)
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(status_code=413, content={"detail": (
            f"the request body is larger than {self.max_bytes} bytes, the most this service reads; "
            "send less, or raise CLIPSWEEP_MAX_BODY_BYTES")})
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` first, then whatever the client sends next."""
    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()
    return replayed


def database_unavailable(error: BaseException) -> JSONResponse:
    return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, content={
        "detail": f"the database is unavailable ({type(error).__name__}); try again in a few seconds"})


def install(app: FastAPI, *, max_body_bytes: int, allowed_hosts: list[str]) -> None:
    # The last added runs first: the host is checked before anything else.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(SameOriginWrites)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    async def _unavailable(request: Request, exc: Any) -> JSONResponse:
        return database_unavailable(exc)

    for error in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(error, _unavailable)
