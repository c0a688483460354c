"""Standard Webhooks 1.0 signatures (https://www.standardwebhooks.com/): what we send, and what a receiver checks.

A message carries three headers: `webhook-id` (unique per message, so a receiver can drop a replay it has
seen), `webhook-timestamp` (Unix seconds, so it can drop an old replay it no longer remembers) and
`webhook-signature`, `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the endpoint's
secret. Signing the id and timestamp with the body is what ties them together: neither can be swapped
without the secret. Following the standard rather than inventing a scheme lets receivers use its
libraries in any language.

A receiver verifies before it parses, on the body bytes exactly as received (any re-serialization changes
them)::

    from service.webhooks.signing import InvalidSignature, verify

    try:
        verify(secret, request.headers, raw_body)  # raw bytes, not re-encoded JSON
    except InvalidSignature:
        return 400
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MESSAGE_ID_PREFIX = "msg_"
VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class InvalidSignature(ValueError):
    """The message is not one the holder of the secret sent recently: refuse it, do not act on it."""


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` and 32 random bytes in base64, the form the standard's libraries read."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    """A fresh `webhook-id`. Retries of one message reuse its id: that is how a receiver de-duplicates."""
    return MESSAGE_ID_PREFIX + uuid.uuid4().hex


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value (`v1,<base64>`) of one message."""
    return _signature(_key(secret), msg_id, str(int(timestamp)), body)


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers that go with `body`: the three the standard names, and its JSON content type."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, headers: Mapping[str, str], body: bytes, *,
           tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> None:
    """What a receiver does: return if `body` and `headers` were signed with `secret` within
    `tolerance_seconds` of `now` (default: the clock), else raise InvalidSignature saying why.

    `headers` may use any case for its names (HTTP frameworks differ). `webhook-signature` may hold several
    space-separated signatures (a sender rotating its secret signs with both): one matching is enough.
    """
    found = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, offered = (_header(found, name) for name in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    _check_timestamp(stamp, tolerance_seconds, time.time() if now is None else now)
    # The timestamp is signed as the header spells it, the way the standard's libraries do.
    expected = _signature(_key(secret), msg_id, stamp, body).encode()
    # compare_digest on every candidate: how long the comparison takes says nothing about the signature.
    matches = [hmac.compare_digest(expected, candidate.encode()) for candidate in offered.split()]
    if not any(matches):
        raise InvalidSignature("no webhook-signature matches: the secret is wrong, or the body or the "
                               "webhook-id or webhook-timestamp header was changed on the way")


def _key(secret: str) -> bytes:
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        # The standard's libraries accept secrets without their base64 padding, so we do too.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is `whsec_` and base64: this one is not base64") from None
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def _signature(key: bytes, msg_id: str, stamp: str, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def _header(found: Mapping[str, str], name: str) -> str:
    value = found.get(name, "").strip()
    if not value:
        raise InvalidSignature(f"the {name} header is missing: a Standard Webhooks message has webhook-id, "
                               "webhook-timestamp and webhook-signature")
    return value


def _check_timestamp(stamp: str, tolerance_seconds: int, now: float) -> None:
    if not stamp.isascii() or not stamp.isdigit():
        raise InvalidSignature(f"webhook-timestamp must be whole Unix seconds, got {stamp[:32]!r}")
    age = now - int(stamp)
    if age > tolerance_seconds:
        raise InvalidSignature(f"webhook-timestamp is too old: {age:.0f} s before now, more than the "
                               f"{tolerance_seconds} s allowed (a replay, or this machine's clock is wrong)")
    if -age > tolerance_seconds:
        raise InvalidSignature(f"webhook-timestamp is too new: {-age:.0f} s after now, more than the "
                               f"{tolerance_seconds} s allowed (the sender's or this machine's clock is wrong)")
