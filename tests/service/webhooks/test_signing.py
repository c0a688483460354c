"""Our Standard Webhooks signatures against the standard's own Python library (standardwebhooks on PyPI), both
ways, and against the test vector the standard publishes: receivers will verify with their libraries, not ours."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.webhooks.signing import InvalidSignature, headers, new_message_id, new_secret, sign, verify

BODIES = [b'{"event": "sweep.finished", "sweep": 7}', b"", b"\xff\xfe not UTF-8 \x00", "{\"ω\": \"é\"}".encode()]


def test_the_published_test_vector() -> None:
    signature = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                     b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("body", BODIES)
def test_our_signature_is_the_libraries(body: bytes) -> None:
    secret, msg_id, timestamp = new_secret(), new_message_id(), int(time.time())
    ours = sign(secret, msg_id, timestamp, body)
    assert ours == Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=timezone.utc), body)


@pytest.mark.parametrize("body", BODIES)
def test_the_library_verifies_what_we_send(body: bytes) -> None:
    secret, msg_id = new_secret(), new_message_id()
    sent = headers(secret, msg_id, int(time.time()), body)
    Webhook(secret).verify(body, sent, json_parse=False)  # raises if it disagrees
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, sent, json_parse=False)


@pytest.mark.parametrize("body", BODIES)
def test_we_verify_what_the_library_sends(body: bytes) -> None:
    secret, msg_id, timestamp = new_secret(), new_message_id(), int(time.time())
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=timezone.utc), body)
    verify(secret, {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}, body)


def test_headers_are_the_standards() -> None:
    sent = headers("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1614265330, b"{}")
    assert sent == {"webhook-id": "msg_1", "webhook-timestamp": "1614265330",
                    "webhook-signature": sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1614265330, b"{}"),
                    "content-type": "application/json"}


def test_header_names_are_read_in_any_case_and_any_one_of_several_signatures_will_do() -> None:
    secret, body, now = new_secret(), b'{"a": 1}', 1_700_000_000
    good = headers(secret, "msg_1", now, body)
    offered = {"Webhook-Id": "msg_1", "WEBHOOK-TIMESTAMP": str(now),
               "Webhook-Signature": f"v1,bm90IGl0 {good['webhook-signature']} v2,other"}
    verify(secret, offered, body, now=now)


@pytest.fixture
def signed() -> tuple[str, dict[str, str], bytes, int]:
    secret, body, now = new_secret(), b'{"event": "sweep.finished"}', 1_700_000_000
    return secret, headers(secret, new_message_id(), now, body), body, now


def test_a_tampered_body_fails(signed: tuple[str, dict[str, str], bytes, int]) -> None:
    secret, sent, body, now = signed
    with pytest.raises(InvalidSignature, match="no webhook-signature matches"):
        verify(secret, sent, body.replace(b"finished", b"failed"), now=now)


def test_a_wrong_secret_fails(signed: tuple[str, dict[str, str], bytes, int]) -> None:
    _, sent, body, now = signed
    with pytest.raises(InvalidSignature, match="the secret is wrong"):
        verify(new_secret(), sent, body, now=now)


def test_a_changed_id_fails(signed: tuple[str, dict[str, str], bytes, int]) -> None:
    secret, sent, body, now = signed
    with pytest.raises(InvalidSignature, match="no webhook-signature matches"):
        verify(secret, {**sent, "webhook-id": new_message_id()}, body, now=now)


def test_an_old_timestamp_fails_even_with_its_signature(signed: tuple[str, dict[str, str], bytes, int]) -> None:
    secret, sent, body, now = signed
    verify(secret, sent, body, now=now + 300)
    with pytest.raises(InvalidSignature, match="too old: 301 s"):
        verify(secret, sent, body, now=now + 301)
    with pytest.raises(InvalidSignature, match="too old"):
        verify(secret, sent, body, now=now + 31, tolerance_seconds=30)


def test_a_timestamp_from_the_future_fails(signed: tuple[str, dict[str, str], bytes, int]) -> None:
    secret, sent, body, now = signed
    with pytest.raises(InvalidSignature, match="too new"):
        verify(secret, sent, body, now=now - 301)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(signed: tuple[str, dict[str, str], bytes, int], missing: str) -> None:
    secret, sent, body, now = signed
    with pytest.raises(InvalidSignature, match=f"the {missing} header is missing"):
        verify(secret, {name: value for name, value in sent.items() if name != missing}, body, now=now)


@pytest.mark.parametrize("stamp", ["1700000000.5", "-1700000000", "soon", "١٧٠٠٠٠٠٠٠٠"])
def test_a_timestamp_that_is_not_whole_seconds_fails(signed: tuple[str, dict[str, str], bytes, int],
                                                      stamp: str) -> None:
    secret, sent, body, now = signed
    with pytest.raises(InvalidSignature, match="whole Unix seconds"):
        verify(secret, {**sent, "webhook-timestamp": stamp}, body, now=now)


def test_invalid_signature_is_a_value_error() -> None:
    assert issubclass(InvalidSignature, ValueError)


def test_a_secret_is_prefixed_random_and_long_enough() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
        Webhook(secret)  # the library reads it


def test_a_secret_that_is_not_base64_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not base64"):
        sign("whsec_not*base64", "msg_1", 1, b"")


def test_message_ids_are_prefixed_unique_and_url_safe() -> None:
    ids = {new_message_id() for _ in range(50)}
    assert len(ids) == 50
    for msg_id in ids:
        assert msg_id.startswith("msg_")
        assert "." not in msg_id  # the signed content is `{id}.{timestamp}.{body}`
        assert msg_id.replace("_", "").replace("-", "").isalnum() and msg_id.isascii()
