"""A real webhook receiver on loopback for the tests: it records every request, answers from a
script of statuses (then 204), and checks signatures with the Standard Webhooks reference library
(not with our own code), as a user's receiver would."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from standardwebhooks.webhooks import Webhook as Verifier


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def verified(self, secret: str) -> Any:
        """The body, once the reference library has checked the signature and timestamp (raises otherwise)."""
        return Verifier(secret).verify(self.body, self.headers)


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, statuses: list[int] | None = None,
                 on_request: Callable[[Delivery], bool] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses = list(statuses or [])
        self.on_request = on_request  # returns False to drop the connection without answering (still recorded)
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def wait_for(self, count: int, timeout: float) -> list[Delivery]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout=timeout)
            return list(self.deliveries)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a dropped connection is on purpose


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        with self.server.lock:
            status = self.server.statuses.pop(0) if self.server.statuses else 204
        delivery = Delivery({k.lower(): v for k, v in self.headers.items()}, body, status)
        with self.server.arrived:
            self.server.deliveries.append(delivery)
            self.server.arrived.notify_all()
        if self.server.on_request is not None and not self.server.on_request(delivery):
            self.close_connection = True
            return
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass
