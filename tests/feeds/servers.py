"""Real servers on loopback for the fetcher tests: an HTTP(S) server that misbehaves on request,
an SFTP server (asyncssh, its own host key, password and key logins), a TCP server that accepts
and never speaks, and a listener whose full backlog makes connecting time out."""

from __future__ import annotations

import asyncio
import base64
import gzip
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PRODUCTS = b"sku,name,price\n" + b"".join(
    f"SKU-{i:06d},Produit n\u00b0{i} \u00e9t\u00e9,{i % 97}.50\n".encode() for i in range(6000)
)
ETAG = '"products-v1"'
LAST_MODIFIED = "Wed, 02 Dec 2026 02:00:00 GMT"
USER = "erp"
PASSWORD = "s3cret-Pass!word"
API_KEY = "key-123-secret"
TRUNCATED_LENGTH = 1000
TRUNCATED_SENT = 400
# The server gives up by itself after this much: bounded traffic even if a client never stops.
ENDLESS_LIMIT = 64 * 2**20
WAIT = 60.0


@dataclass
class Request:
    path: str
    headers: dict[str, str]


@dataclass
class HttpServer:
    """Routes are the `_route_*` functions below, keyed by path."""

    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT)


def _handler(state: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.requests.append(
                Request(self.path, {k.lower(): v for k, v in self.headers.items()})
            )
            route = ROUTES.get(self.path)
            try:
                if route is None:
                    self.send_error(404)
                else:
                    route(self, state)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the client hung up, as the limit tests expect it to

        def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
            self.send_response(status)
            headers.setdefault("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


Route = Callable[[Any, HttpServer], None]


def _products(h: Any, state: HttpServer) -> None:
    if h.headers.get("If-None-Match") == ETAG or h.headers.get("If-Modified-Since") == (
        LAST_MODIFIED
    ):
        h.send_response(304)
        h.send_header("ETag", ETAG)
        h.end_headers()
        return
    h.reply(200, PRODUCTS, ETag=ETAG, Last_Modified=LAST_MODIFIED, Content_Type="text/csv")


def _private(h: Any, state: HttpServer) -> None:
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    if h.headers.get("Authorization") != expected:
        h.reply(401, b"no", WWW_Authenticate='Basic realm="erp"')
        return
    h.reply(200, PRODUCTS)


def _needs_key(h: Any, state: HttpServer) -> None:
    if h.headers.get("X-Api-Key") == API_KEY:
        h.reply(200, PRODUCTS)
    else:
        h.reply(403, b"no")


def _slow(h: Any, state: HttpServer) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(2 * len(PRODUCTS)))
    h.end_headers()
    h.wfile.write(PRODUCTS)
    h.wfile.flush()
    state.release.wait(WAIT)  # until the test ends: the client's read timeout decides
    h.wfile.write(PRODUCTS)


def _truncated(h: Any, state: HttpServer) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(TRUNCATED_LENGTH))
    h.end_headers()
    h.wfile.write(PRODUCTS[:TRUNCATED_SENT])
    h.close_connection = True


def _endless(h: Any, state: HttpServer) -> None:
    h.send_response(200)
    h.end_headers()  # no Content-Length: the body ends when the connection does
    chunk = b"x" * 65536
    for _ in range(ENDLESS_LIMIT // len(chunk)):
        h.wfile.write(chunk)


def _huge(h: Any, state: HttpServer) -> None:
    h.send_response(200)
    h.send_header("Content-Length", str(10 * 2**30))
    h.end_headers()
    h.wfile.write(b"x" * 65536)
    h.wfile.flush()
    state.release.wait(WAIT)


def _export(h: Any, state: HttpServer) -> None:
    disposition = (
        'attachment; filename="../products 2026.csv.gz"; '
        "filename*=UTF-8''export%202026%E2%80%93dec.csv.gz"
    )
    h.reply(200, gzip.compress(PRODUCTS), Content_Disposition=disposition)


def _gzipped(h: Any, state: HttpServer) -> None:
    h.reply(200, gzip.compress(PRODUCTS), Content_Encoding="gzip")  # although asked for identity


def _redirect_to(location: Callable[[HttpServer], str]) -> Route:
    def route(h: Any, state: HttpServer) -> None:
        h.reply(302, Location=location(state))

    return route


ROUTES: dict[str, Route] = {
    "/products.csv": _products,
    "/plain.csv": lambda h, state: h.reply(200, PRODUCTS),
    "/private.csv": _private,
    "/needs-key.csv": _needs_key,
    "/slow.csv": _slow,
    "/error.csv": lambda h, state: h.reply(500, b"boom"),
    "/gone.csv": lambda h, state: h.reply(410),
    "/truncated.csv": _truncated,
    "/endless.csv": _endless,
    "/huge.csv": _huge,
    "/export": _export,
    "/gzipped.csv": _gzipped,
    "/stored.csv.gz": _gzipped,
    "/redirect/products": _redirect_to(lambda state: "/products.csv"),
    "/redirect/private": _redirect_to(lambda state: "/private.csv"),
    "/redirect/loopback": _redirect_to(lambda state: state.url("/products.csv")),
    "/redirect/other-origin": _redirect_to(lambda state: state.url("/plain.csv")),
    "/redirect/loop": _redirect_to(lambda state: "/redirect/loop"),
    "/redirect/ftp": _redirect_to(lambda state: "ftp://example.com/products.csv"),
}


def self_signed_tls() -> ssl.SSLContext:
    """A server context whose certificate no client trusts (the TLS failure test)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert, private = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert, private)
    return context


# SFTP -----------------------------------------------------------------------------------------


@dataclass
class SftpServer:
    """asyncssh serving `root` as "/", on an event loop of its own in a background thread."""

    root: Path
    username: str = "feeds"
    password: str = "sftp-Pa55word"
    client_keys: list[bytes] = field(default_factory=list)
    host_key: asyncssh.SSHKey = field(
        default_factory=lambda: asyncssh.generate_private_key("ssh-ed25519")
    )
    auth_attempts: list[str] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    @property
    def fingerprint(self) -> str:
        return str(self.host_key.get_fingerprint("sha256"))

    def url(self, path: str, user: str | None = None) -> str:
        return f"sftp://{user or self.username}@127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._acceptor = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(WAIT)
        self.port = self._acceptor.get_port()

    def stop(self) -> None:
        async def close() -> None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            # Connections a client dropped may still have tasks; end them before the loop goes.
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(WAIT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)
        self._loop.close()

    async def _listen(self) -> asyncssh.SSHAcceptor:
        state = self
        root = str(self.root).encode()

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                state.connections += 1

            def begin_auth(self, username: str) -> bool:
                state.auth_attempts.append(username)
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return username == state.username and password == state.password

            def public_key_auth_supported(self) -> bool:
                return True

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                return username == state.username and key.public_data in state.client_keys

        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            server_factory=Server,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
            allow_scp=False,
        )


# Plain TCP -------------------------------------------------------------------------------------


class SilentServer:
    """Accepts connections and never sends a byte (an SSH server that never shows its banner)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)
        for connection in self._held:
            connection.close()
        self._listener.close()


class FullBacklog:
    """A listener that never accepts, its backlog filled: the kernel drops further SYNs, so a
    connect times out, on loopback, without sending a packet anywhere else."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        self.full = False
        deadline = time.monotonic() + 10
        while not self.full and len(self._fillers) < 16 and time.monotonic() < deadline:
            probe = socket.socket()
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", self.port))
            except TimeoutError:
                self.full = True
                probe.close()
                continue
            self._fillers.append(probe)

    def stop(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()


def free_port() -> int:
    """A port nothing listens on (bound and released; nothing else here takes it meanwhile)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
