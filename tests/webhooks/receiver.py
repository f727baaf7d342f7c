"""A real webhook receiver on loopback: verifies signatures with `standardwebhooks`, the library
receivers use, and answers what each test scripts (500 then 200, hang, 410, Retry-After ...)."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"received": true}'
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering; `hang` waits until the test ends.
    delay: float = 0.0
    hang: bool = False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    payload: Any = None
    verified: bool = False
    error: str | None = None

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.secret: str | None = None
        self.received: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.in_flight = 0
        self.max_in_flight = 0
        self.released = threading.Event()
        self._lock = threading.Condition()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def script(self, *replies: Reply) -> None:
        """Answer these, in order, then the default."""
        self.replies.extend(replies)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} requests, got {len(self.received)} in {timeout} s"
                    )
                self._lock.wait(remaining)
            return list(self.received)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    def _record(self, item: Received) -> Reply:
        with self._lock:
            self.received.append(item)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            reply = self.replies.popleft() if self.replies else self.default
            self._lock.notify_all()
            return reply

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _verify(self, item: Received) -> None:
        if self.secret is None:
            return
        try:
            item.payload = Webhook(self.secret).verify(item.body, item.headers)
            item.verified = True
        except WebhookVerificationError as exc:
            item.error = str(exc)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per answer

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                item = Received(
                    path=self.path,
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                receiver._verify(item)
                reply = receiver._record(item)
                try:
                    if reply.hang:
                        self._hang_until_the_sender_gives_up()
                    elif reply.delay:
                        time.sleep(reply.delay)
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.send_header("connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the sender gave up (timeout): nothing to answer
                finally:
                    receiver._done()

            def _hang_until_the_sender_gives_up(self) -> None:
                deadline = time.monotonic() + 60
                while not receiver.released.wait(0.02) and time.monotonic() < deadline:
                    readable, _, _ = select.select([self.connection], [], [], 0)
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        return  # the sender closed the connection: it timed out

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
