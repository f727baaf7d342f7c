"""A real HTTP server on loopback that serves a feed's file as an ERP would: with an ETag, a
Last-Modified date, 304 to a matching conditional request, or a scripted error status."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    body: bytes = b""
    status: int = 200
    etag: bool = True
    last_modified: str = "Wed, 02 Dec 2026 02:00:00 GMT"


@dataclass
class FileServer:
    files: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, **options: object) -> str:
        self.files[path] = Served(body=body, **options)  # type: ignore[arg-type]
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for requested, _headers in self.requests if requested == path)


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
            served = state.files.get(self.path)
            if served is None:
                self.send_error(404)
                return
            if served.status != 200:
                self.send_response(served.status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            tag = f'"{hashlib.sha256(served.body).hexdigest()[:16]}"'
            if served.etag and self.headers.get("If-None-Match") == tag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(served.body)))
            if served.etag:
                self.send_header("ETag", tag)
                self.send_header("Last-Modified", served.last_modified)
            self.end_headers()
            self.wfile.write(served.body)

    return Handler


@contextmanager
def file_server() -> Iterator[FileServer]:
    state = FileServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
