"""One delivery attempt against a real HTTP server on loopback (a thread of this process): what it sends, the
answers it reports, the redirects it follows or refuses, and the time it is allowed."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from service.webhooks.signing import headers as signed_headers
from service.webhooks.signing import new_message_id, new_secret, verify
from service.webhooks.transport import USER_AGENT, Attempt, post

BODY = b'{"event": "sweep.finished", "sweep": 42, "secret_payload": "TOPSECRET"}'


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver(ThreadingHTTPServer):
    """Answers by path: /status/N, /redirect/N?to=URL, /loop (a 307 to itself), /sleep (until released),
    /drip (headers a line at a time, until released), /big (a large body); anything else is a 200."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.received: list[Received] = []
        self.release = threading.Event()

    def url(self, path: str = "/", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.server_address[1]}{path}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up (timeouts, the capped body read) break the pipe on purpose


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        route = urlsplit(self.path)
        if route.path.startswith("/status/"):
            self.answer(int(route.path.rsplit("/", 1)[1]))
        elif route.path.startswith("/redirect/"):
            self.answer(int(route.path.rsplit("/", 1)[1]), location=parse_qs(route.query)["to"][0])
        elif route.path == "/loop":
            self.answer(307, location="/loop")
        elif route.path == "/sleep":
            self.server.release.wait(10)
            self.answer(200)
        elif route.path == "/drip":
            self.drip()
        elif route.path == "/big":
            self.answer(200, payload=b"x" * (8 * 2**20))
        else:
            self.answer(200, payload=b"ok")

    def answer(self, status: int, location: str | None = None, payload: bytes = b"") -> None:
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def drip(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        while not self.server.release.wait(0.1):
            self.wfile.write(b"X-Drip: a\r\n")
            self.wfile.flush()

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(server: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve(Receiver())


def send(url: str, **options: object) -> tuple[Attempt, dict[str, str]]:
    secret = new_secret()
    sent = signed_headers(secret, new_message_id(), int(time.time()), BODY)
    options.setdefault("allow_private", True)
    return post(url, BODY, sent, **options), {"secret": secret, **sent}  # type: ignore[arg-type]


def test_a_2xx_is_reported_and_the_receiver_gets_the_exact_body_and_headers(receiver: Receiver) -> None:
    attempt, sent = send(receiver.url("/hooks?team=7"))
    assert attempt.status == 200 and attempt.error is None
    assert 0 < attempt.latency_ms < 5000
    [got] = receiver.received
    assert got.path == "/hooks?team=7" and got.body == BODY
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type"):
        assert got.headers[name] == sent[name]
    assert got.headers["host"] == f"127.0.0.1:{receiver.server_address[1]}"
    assert got.headers["user-agent"] == USER_AGENT
    assert got.headers["content-length"] == str(len(BODY))
    verify(sent["secret"], got.headers, got.body)  # what the receiver got is what the receiver can verify


def test_the_connection_goes_to_the_checked_address_and_the_host_header_carries_the_name(receiver: Receiver) -> None:
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"] if host == "hooks.test" else []

    attempt, _ = send(receiver.url("/", host="hooks.test"), resolve=resolve)
    assert attempt.status == 200
    assert lookups == ["hooks.test"]  # once: no second lookup that could answer differently
    assert receiver.received[0].headers["host"] == f"hooks.test:{receiver.server_address[1]}"


@pytest.mark.parametrize("address, says", [("10.0.0.1", "private"), ("169.254.169.254", "link-local")])
def test_a_name_that_resolves_to_an_internal_address_at_delivery_is_refused_before_connecting(
        address: str, says: str) -> None:
    """DNS can change after a webhook was created: each attempt checks what the name resolves to
    then, and connects to nothing it refused (10.0.0.1 and the metadata address are not reached:
    the attempt fails with the reason at once, with no connection timeout to wait for)."""
    attempt, _ = send("http://hooks.test/", allow_private=False, timeout=5, resolve=lambda host, port: [address])
    assert attempt.status is None and says in (attempt.error or "") and attempt.latency_ms < 1000


def test_the_next_address_is_tried_when_one_refuses(receiver: Receiver) -> None:
    attempt, _ = send(receiver.url("/", host="two.test"), resolve=lambda host, port: ["127.0.0.2", "127.0.0.1"])
    assert attempt.status == 200 and len(receiver.received) == 1


@pytest.mark.parametrize("status", [500, 410, 404, 201, 204])
def test_any_status_is_reported_as_it_is(receiver: Receiver, status: int) -> None:
    attempt, _ = send(receiver.url(f"/status/{status}"))
    assert (attempt.status, attempt.error) == (status, None)


@pytest.mark.parametrize("status", [307, 308])
def test_307_and_308_are_followed_with_the_same_post(receiver: Receiver, status: int) -> None:
    attempt, _ = send(receiver.url(f"/redirect/{status}?to=/final"))
    assert (attempt.status, attempt.error) == (200, None)
    first, second = receiver.received
    assert second.path == "/final" and second.body == first.body == BODY
    assert second.headers == first.headers


def test_an_absolute_redirect_to_another_loopback_url_is_followed(receiver: Receiver) -> None:
    attempt, _ = send(receiver.url(f"/redirect/307?to={receiver.url('/status/202', host='localhost')}"))
    assert (attempt.status, attempt.error) == (202, None)
    assert [r.path for r in receiver.received] == ["/redirect/307?to=" + receiver.url("/status/202", host="localhost"),
                                                   "/status/202"]


def test_a_redirect_to_the_metadata_address_is_refused_even_where_private_is_allowed(receiver: Receiver) -> None:
    attempt, _ = send(receiver.url("/redirect/307?to=http://169.254.169.254/latest/meta-data/"), allow_private=True)
    assert attempt.status == 307
    assert attempt.error is not None and "link-local" in attempt.error and "redirected" in attempt.error
    assert len(receiver.received) == 1  # refused before any connection: nothing else was sent


def test_a_redirect_to_an_ipv6_link_local_address_is_refused(receiver: Receiver) -> None:
    attempt, _ = send(receiver.url("/redirect/308?to=http://[fe80::1]:8080/"), allow_private=True)
    assert attempt.status == 308 and "link-local" in (attempt.error or "")
    assert len(receiver.received) == 1


@pytest.mark.parametrize("status", [301, 302, 303])
def test_redirects_that_turn_a_post_into_a_get_are_reported_not_followed(receiver: Receiver, status: int) -> None:
    attempt, _ = send(receiver.url(f"/redirect/{status}?to=/final"))
    assert attempt.status == status
    assert attempt.error is not None and "webhooks are POSTs" in attempt.error and "configure" in attempt.error
    assert len(receiver.received) == 1


def test_redirects_stop_after_the_maximum(receiver: Receiver) -> None:
    attempt, _ = send(receiver.url("/loop"), max_redirects=2)
    assert attempt.status == 307 and attempt.error == "more than 2 redirects: configure the final URL"
    assert len(receiver.received) == 3


def test_a_redirect_without_a_location_is_reported(receiver: Receiver) -> None:
    attempt, _ = send(receiver.url("/status/307"))
    assert attempt.status == 307 and "without a Location" in (attempt.error or "")


def test_loopback_is_refused_before_connecting_unless_allowed(receiver: Receiver) -> None:
    attempt, _ = send(receiver.url("/"), allow_private=False)
    assert attempt.status is None
    assert attempt.error is not None and "a loopback address" in attempt.error
    assert receiver.received == []


def test_a_bad_url_is_an_attempt_with_an_error_not_an_exception() -> None:
    attempt, _ = send("ftp://127.0.0.1/")
    assert attempt.status is None and attempt.error == "webhook URLs must use http or https, got 'ftp'"


def test_a_receiver_slower_than_the_timeout_times_out_in_time(receiver: Receiver) -> None:
    started = time.monotonic()
    attempt, _ = send(receiver.url("/sleep"), timeout=1)
    assert attempt.status is None and attempt.error == "timed out after 1 s"
    assert time.monotonic() - started < 2
    assert 900 < attempt.latency_ms < 2000


def test_the_timeout_bounds_the_whole_attempt_not_each_read(receiver: Receiver) -> None:
    """A receiver that sends a header line every 0.1 s never lets a single read time out."""
    started = time.monotonic()
    attempt, _ = send(receiver.url("/drip"), timeout=0.5)
    assert attempt.status is None and attempt.error == "timed out after 0.5 s"
    assert time.monotonic() - started < 1.5


def test_the_timeout_bounds_name_resolution_too() -> None:
    unblock = threading.Event()
    try:
        started = time.monotonic()
        attempt, _ = send("http://slow-dns.test/", timeout=0.3, resolve=lambda host, port: unblock.wait(5) and [])
        assert attempt.status is None and attempt.error == "timed out after 0.3 s"
        assert time.monotonic() - started < 1.3
    finally:
        unblock.set()


def test_a_large_answer_is_read_only_in_part(receiver: Receiver) -> None:
    attempt, _ = send(receiver.url("/big"))
    assert (attempt.status, attempt.error) == (200, None)


def test_a_closed_port_is_a_connection_error() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    attempt, _ = send(f"http://127.0.0.1:{port}/")
    assert attempt.status is None and attempt.error is not None and "connection refused" in attempt.error


def test_a_receiver_that_hangs_up_without_answering_is_reported() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def hang_up() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        attempt, _ = send(f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=5)
        thread.join(5)
    assert attempt.status is None
    assert attempt.error in ("the receiver closed the connection without answering",
                             "the receiver reset the connection")


def test_errors_never_carry_the_body_or_the_headers(receiver: Receiver) -> None:
    attempts = [send(receiver.url(path), timeout=0.3) for path in ("/sleep", "/redirect/302?to=/x", "/loop")]
    attempts.append(send(receiver.url("/"), allow_private=False))
    for attempt, sent in attempts:
        assert attempt.error
        assert "TOPSECRET" not in attempt.error
        assert all(value not in attempt.error for name, value in sent.items() if name != "content-type")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for the name localhost, made now (nothing secret is checked in)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_receiver(certificate: tuple[Path, Path]) -> Iterator[Receiver]:
    cert, key = certificate
    server = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield from serve(server)


def loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def test_https_verifies_the_certificate_against_the_name_through_the_pinned_address(
        tls_receiver: Receiver, certificate: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    attempt, sent = send(tls_receiver.url("/tls", host="localhost", scheme="https"), ssl_context=trusting,
                         resolve=loopback)
    assert (attempt.status, attempt.error) == (200, None)
    [got] = tls_receiver.received
    assert got.body == BODY and got.headers["webhook-signature"] == sent["webhook-signature"]
    assert got.headers["host"] == f"localhost:{tls_receiver.server_address[1]}"


def test_https_refuses_a_certificate_for_another_name(tls_receiver: Receiver, certificate: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    attempt, _ = send(tls_receiver.url("/", host="elsewhere.test", scheme="https"), ssl_context=trusting,
                      resolve=loopback)
    assert attempt.status is None and "certificate" in (attempt.error or "") and "elsewhere.test" in attempt.error
    assert tls_receiver.received == []


def test_https_refuses_an_untrusted_certificate(tls_receiver: Receiver) -> None:
    attempt, _ = send(tls_receiver.url("/", host="localhost", scheme="https"), resolve=loopback)
    assert attempt.status is None and "certificate" in (attempt.error or "")
    assert tls_receiver.received == []


def test_https_is_not_redirected_to_http(tls_receiver: Receiver, certificate: tuple[Path, Path]) -> None:
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    target = f"http://localhost:{tls_receiver.server_address[1]}/plain"
    attempt, _ = send(tls_receiver.url(f"/redirect/307?to={target}", host="localhost", scheme="https"),
                      ssl_context=trusting, resolve=loopback)
    assert attempt.status == 307 and "from https to http" in (attempt.error or "")
    assert len(tls_receiver.received) == 1
