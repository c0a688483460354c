"""One webhook delivery attempt: a POST to a checked URL, bounded in time, that reports what happened and never
raises for what the network or the receiver does.

It connects to the addresses `resolve_checked` allowed, never to the name: resolving the name again could give
another answer (DNS rebinding), and the check would have been for nothing. The name still goes where it
matters: in the Host header, and for https as the TLS server name, so the certificate is verified against
the name the URL has, not against an IP address.

Only 307 and 308 redirects are followed, and each target is checked like the URL itself: a redirect is a URL
the receiver chooses after registration, so it gets no more trust than the registered one. 301, 302 and 303
turn a POST into a GET in clients that follow them, so they are reported instead; the fix is the final URL in
the webhook's configuration. Error texts name hosts and what went wrong, never the body or the headers (the
signature is in them).

The standard library only: http.client lets the connection be made to a chosen address, which is the point.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping
from urllib.parse import SplitResult, urljoin

from service.webhooks.addresses import DEFAULT_PORTS, Address, Resolver, UnsafeUrl, resolve_checked, system_resolve

USER_AGENT = "clipsweep-webhooks"
MAX_RESPONSE_BYTES = 64 * 1024
FOLLOWED = frozenset({307, 308})
NOT_FOLLOWED = frozenset({301, 302, 303})


@dataclass(frozen=True)
class Attempt:
    """How one attempt ended: the final HTTP status (None if no answer came), how long it took in all, and why
    it failed (None when an answer came and nothing else went wrong)."""

    status: int | None
    latency_ms: float
    error: str | None


class _Stop(Exception):
    """An answer came, but the attempt ends on it with an error (a redirect not followed)."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status


def post(url: str, body: bytes, headers: Mapping[str, str], *, allow_private: bool, timeout: float = 10.0,
         max_redirects: int = 3, resolve: Resolver = system_resolve,
         ssl_context: ssl.SSLContext | None = None) -> Attempt:
    """POST `body` with `headers` to `url`, following up to `max_redirects` 307/308 redirects, all of it within
    `timeout` seconds, name resolution included. `ssl_context` defaults to the system's trusted CAs."""
    started = time.monotonic()
    deadline = started + timeout
    status: int | None = None
    error: str | None = None
    try:
        status = _deliver(url, body, headers, allow_private, deadline, max_redirects, _bounded(resolve, deadline),
                          ssl_context)
    except _Stop as stop:
        status, error = stop.status, str(stop)
    except UnsafeUrl as unsafe:
        error = str(unsafe)
    except (OSError, http.client.HTTPException) as failure:
        error = _describe(failure, timeout)
    return Attempt(status=status, latency_ms=(time.monotonic() - started) * 1000, error=error)


def _deliver(url: str, body: bytes, headers: Mapping[str, str], allow_private: bool, deadline: float,
             max_redirects: int, resolve: Resolver, context: ssl.SSLContext | None) -> int:
    parts, addresses = resolve_checked(url, allow_private=allow_private, resolve=resolve)
    for hop in range(max_redirects + 1):
        status, location = _exchange(parts, addresses, body, headers, deadline, context)
        if status in NOT_FOLLOWED:
            raise _Stop(status, f"the receiver answered {status}, a redirect that would turn the POST into a GET: "
                                "webhooks are POSTs, so configure the URL it redirects to")
        if status not in FOLLOWED:
            return status
        if not location:
            raise _Stop(status, f"the receiver answered {status} without a Location header")
        if hop == max_redirects:
            raise _Stop(status, f"more than {max_redirects} redirects: configure the final URL")
        parts, addresses = _redirected(parts, location, status, allow_private, resolve)
    raise AssertionError("unreachable: the last hop returns or raises")


def _redirected(parts: SplitResult, location: str, status: int, allow_private: bool,
                resolve: Resolver) -> tuple[SplitResult, list[Address]]:
    """Where a 307 or 308 points, checked like the URL itself (a relative Location is relative to the URL)."""
    following = urljoin(parts.geturl(), location)
    if parts.scheme == "https" and following.lower().startswith("http:"):
        raise _Stop(status, "the receiver redirected from https to http: a webhook sent over https is not sent "
                            "unencrypted after that; configure the URL it redirects to")
    try:
        return resolve_checked(following, allow_private=allow_private, resolve=resolve)
    except UnsafeUrl as unsafe:
        raise _Stop(status, f"the receiver redirected to a URL webhooks may not go to: {unsafe}") from None


def _exchange(parts: SplitResult, addresses: list[Address], body: bytes, headers: Mapping[str, str],
              deadline: float, context: ssl.SSLContext | None) -> tuple[int, str | None]:
    """One request and its answer: the status and the Location header. The answer's body is read (up to
    MAX_RESPONSE_BYTES, so a receiver cannot make us read for ever) and dropped."""
    sock = _connect(addresses, parts.port or DEFAULT_PORTS[parts.scheme], deadline)
    try:
        if parts.scheme == "https":
            sock.settimeout(_remaining(deadline))  # the whole handshake shares one timeout
            sock = (context or _default_context()).wrap_socket(sock, server_hostname=parts.hostname)
        request_headers = _request_headers(parts, headers, len(body))
        conn = http.client.HTTPConnection(request_headers["host"])
        conn.sock = _DeadlineSocket(sock, deadline)  # already connected: http.client never resolves the name
        conn.request("POST", _target(parts), body=body, headers=request_headers)
        response = conn.getresponse()
        try:
            response.read(MAX_RESPONSE_BYTES)
        except (OSError, http.client.HTTPException):
            pass  # the status is the answer; a body cut short changes nothing
        response.close()
        return response.status, response.getheader("location")
    finally:
        sock.close()


def _connect(addresses: list[Address], port: int, deadline: float) -> socket.socket:
    """A socket connected to the first of `addresses` that accepts, tried in order (as the resolver ordered
    them, IPv6 and IPv4 alike); the last failure if none does."""
    failure: OSError = OSError("no address to connect to")
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect((str(address), port))
            return sock
        except TimeoutError:
            sock.close()
            raise  # the whole attempt's time is spent: no time is left for the next address
        except OSError as error:
            sock.close()
            failure = error
    raise failure


def _target(parts: SplitResult) -> str:
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _request_headers(parts: SplitResult, given: Mapping[str, str], length: int) -> dict[str, str]:
    """The given headers, with the ones that must be ours set by us: the Host of the URL (the connection went
    to an address, the receiver routes by name), the body's length, and one request per connection."""
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    if parts.port and parts.port != DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{parts.port}"
    ours = {"host": host, "user-agent": USER_AGENT, "content-length": str(length), "connection": "close"}
    return {**{name.lower(): value for name, value in given.items() if name.lower() not in ours}, **ours}


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("the attempt's time is spent")
    return remaining


class _DeadlineSocket:
    """What http.client needs of a socket (sendall, makefile, close), with every read and write waiting at most
    until the attempt's deadline. A socket timeout alone bounds each read, not their sum: a receiver sending a
    byte a second would hold a plain socket for ever.

    close() leaves the socket open: http.client closes its connection while the response is still being read
    from it (a plain socket survives that by counting its files), so the socket's owner closes it instead."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(_remaining(self._deadline))  # sendall's timeout is for all of it (Python 3.5+)
        self._sock.sendall(data)

    def recv_into(self, buffer: memoryview) -> int:
        self._sock.settimeout(_remaining(self._deadline))
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        pass


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        return self._sock.recv_into(buffer)


def _bounded(resolve: Resolver, deadline: float) -> Resolver:
    """`resolve` limited to the attempt's time: the system resolver takes no timeout, so it runs in a thread
    that is left to finish on its own if the time runs out."""
    def bounded(host: str, port: int) -> list[str]:
        answer: list[list[str]] = []
        failure: list[BaseException] = []

        def run() -> None:
            try:
                answer.append(resolve(host, port))
            except BaseException as error:  # handed to the caller below
                failure.append(error)

        thread = threading.Thread(target=run, name=f"resolve {host}", daemon=True)
        thread.start()
        thread.join(_remaining(deadline))
        if failure:
            raise failure[0]
        if not answer:
            raise TimeoutError(f"resolving {host} took too long")
        return answer[0]
    return bounded


@lru_cache(maxsize=1)
def _default_context() -> ssl.SSLContext:
    # Loading the system's CAs takes milliseconds; one context serves every thread.
    return ssl.create_default_context()


def _describe(failure: BaseException, timeout: float) -> str:
    """Why no answer came, for the people configuring the webhook."""
    if isinstance(failure, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(failure, ssl.SSLCertVerificationError):
        return f"the receiver's TLS certificate was refused: {failure.verify_message}"
    if isinstance(failure, ssl.SSLError):
        return f"TLS failed: {failure.reason or failure}"
    if isinstance(failure, ConnectionRefusedError):
        return "connection refused: nothing listens on that port"
    if isinstance(failure, http.client.RemoteDisconnected):
        return "the receiver closed the connection without answering"
    if isinstance(failure, (ConnectionResetError, BrokenPipeError)):
        return "the receiver reset the connection"
    if isinstance(failure, http.client.HTTPException):
        return f"the receiver's answer is not valid HTTP ({type(failure).__name__})"
    return f"network error: {failure.strerror or failure}" if isinstance(failure, OSError) else str(failure)
