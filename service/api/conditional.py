"""Conditional GETs: an answer names what it was computed from in its ETag, and a client that
sends that ETag back in If-None-Match gets 304 Not Modified, with no body, while it still holds.

A page polling a sweep then costs the API one small query per poll when nothing changed, and
the browser does it by itself: `Cache-Control: no-cache` lets it keep the answer but makes it ask
again every time, with the ETag (the dashboard's plain `fetch` calls need nothing more).
"""

from __future__ import annotations

import hashlib

from fastapi import Request

from service import __version__


def etag(*what: object) -> str:
    """A strong ETag for an answer computed from `what` by this version of the service (another
    version may answer differently)."""
    digest = hashlib.blake2b(repr((__version__, *what)).encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def not_modified(request: Request, tag: str) -> bool:
    """Whether the request's If-None-Match names `tag` (or is `*`)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    sent = {value.strip().removeprefix("W/") for value in header.split(",")}
    return tag in sent or "*" in sent


def revalidate(tag: str) -> dict[str, str]:
    """Headers of an answer a client may keep but must check again before using."""
    return {"ETag": tag, "Cache-Control": "no-cache"}
