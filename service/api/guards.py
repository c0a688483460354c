"""What keeps a request from hurting the service: a bound on the body it may send, and a clear
503 (never a bare 500) while the database is away."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

RETRY_AFTER_SECONDS = 5


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


def install(app: FastAPI, max_body_bytes: int) -> None:
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    async def _unavailable(request: Request, exc: Any) -> JSONResponse:
        return database_unavailable(exc)

    for error in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(error, _unavailable)
