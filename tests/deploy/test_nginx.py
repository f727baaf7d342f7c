"""The committed deploy/nginx.conf, run by Debian's nginx in front of two distributed web
processes (PostgreSQL + Redis + a Celery worker): sign in, upload and follow an import's
progress over HTTPS through it, and its redirect and body limits.

The config is used as committed except for a small text transform (`render_config`): the
upstream server, the listen ports, the certificate paths, the pid/log paths, the `user` line
(root's test run cannot hand tmp_path to www-data), and scratch folders under tmp_path (the
committed file keeps the package's own defaults). Each replaced line must be found, so the test
fails if the committed file drifts from what it expects.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from product_importer.db import Database
from tests.conftest import _unavailable
from tests.factories import DEFAULT_PASSWORD, make_token, make_user
from tests.fleet import REDIS_URL, Fleet, reachable
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
# Small, so the app's own 413 is cheap to reach; nginx's larger limit is tested separately.
APP_UPLOAD_LIMIT = 8_000_000
# Enough rows (about 4.4 MB) that the import runs for seconds, not one 0.25 s poll of the event
# stream: at 10,000 rows the faster import went from queued to completed between two polls.
ROWS = 100_000


def render_config(
    text: str,
    *,
    upstreams: list[str],
    http_port: int,
    https_port: int,
    cert: Path,
    key: Path,
    prefix: Path,
) -> str:
    replacements = [
        (r"^user www-data;$", f"user {getpass.getuser()};"),
        (r"^pid /run/nginx\.pid;$", f"pid {prefix / 'nginx.pid'};"),
        (r"^error_log /var/log/nginx/error\.log", f"error_log {prefix / 'error.log'}"),
        (r"access_log /var/log/nginx/access\.log", f"access_log {prefix / 'access.log'}"),
        (r"server web:8000;", " ".join(f"server {address};" for address in upstreams)),
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen 443 ssl", f"listen 127.0.0.1:{https_port} ssl"),
        (r"ssl_certificate /etc/ssl/product-importer/fullchain\.pem;", f"ssl_certificate {cert};"),
        (
            r"ssl_certificate_key /etc/ssl/product-importer/privkey\.pem;",
            f"ssl_certificate_key {key};",
        ),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
        assert count == 1, f"deploy/nginx.conf no longer has {pattern!r}"
    scratch = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text, count = re.subn(r"^http \{\n", "http {\n" + scratch, text, count=1, flags=re.MULTILINE)
    assert count == 1
    return text


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


# Few, so the per-address limit is reached in a few requests; over a window no other test uses,
# since the counters live in the shared Redis (cleared by the test that fills them).
SIGNIN_LIMIT_PER_ADDRESS = 3
SIGNIN_WINDOW_MINUTES = 13


class ProxiedFleet(Fleet):
    """Web processes as they run behind TLS: secure cookies, a small upload limit, and
    X-Forwarded-* believed from nginx's address only (here loopback), as compose.yaml does."""

    def env(self, name: str) -> dict[str, str]:
        env = super().env(name)
        env.update(
            PRODUCT_IMPORTER_COOKIE_SECURE="true",
            PRODUCT_IMPORTER_MAX_UPLOAD_BYTES=str(APP_UPLOAD_LIMIT),
            PRODUCT_IMPORTER_SIGNIN_LIMIT_PER_ADDRESS=(
                f"{SIGNIN_LIMIT_PER_ADDRESS}/{SIGNIN_WINDOW_MINUTES} minutes"
            ),
            FORWARDED_ALLOW_IPS="127.0.0.1",
        )
        return env


@dataclass
class Proxy:
    fleet: ProxiedFleet
    https: str
    http: str
    tls: ssl.SSLContext
    web_ports: list[int]
    prefix: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.https, verify=self.tls, timeout=30)

    def access_log(self) -> str:
        return (self.prefix / "access.log").read_text()


@pytest.fixture
def proxy(tmp_path: Path, postgres_url: str) -> Iterator[Proxy]:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if nginx is None:
        _unavailable("nginx (Debian package nginx-light)")
    if not reachable("127.0.0.1", 6379):
        _unavailable("Redis at 127.0.0.1:6379")
    assert nginx is not None
    from product_importer import migrate
    from tests.conftest import clear_tables

    database = Database(postgres_url)
    migrate.upgrade(database)
    clear_tables(database)
    fleet = ProxiedFleet(tmp_path, database, REDIS_URL)
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    process: subprocess.Popen[bytes] | None = None
    try:
        web_ports = [int(fleet.web(name=f"web-{i}").rsplit(":", 1)[1]) for i in (1, 2)]
        cert, key = _self_signed_certificate(prefix)
        http_port, https_port = free_port(), free_port()
        config = prefix / "nginx.conf"
        config.write_text(
            render_config(
                (ROOT / "deploy" / "nginx.conf").read_text(),
                upstreams=[f"127.0.0.1:{port}" for port in web_ports],
                http_port=http_port,
                https_port=https_port,
                cert=cert,
                key=key,
                prefix=prefix,
            )
        )
        command = [nginx, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        assert checked.returncode == 0, checked.stderr
        process = subprocess.Popen([*command, "-g", "daemon off;"])
        deadline = time.monotonic() + 15
        while not reachable("127.0.0.1", https_port):
            assert process.poll() is None, (prefix / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
        tls = ssl.create_default_context(cafile=str(cert))
        yield Proxy(
            fleet,
            f"https://127.0.0.1:{https_port}",
            f"http://127.0.0.1:{http_port}",
            tls,
            web_ports,
            prefix,
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=20)
        fleet.stop()
        database.dispose()


def _locations(config: str) -> dict[str, str]:
    """Each `location` block's match expression and body (the blocks nest nothing)."""
    return {
        match.group(1).strip(): match.group(2)
        for match in re.finditer(r"location\s+([^{]+)\{([^}]*)\}", config)
    }


def _seconds(value: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def test_nginx_config_fits_the_app_routes_and_limits(tmp_path: Path) -> None:
    """Without running nginx: the locations still match the app's routes, and the limits
    still fit the app's defaults."""
    from product_importer.app import create_app
    from product_importer.settings import GIB, Settings
    from tests.conftest import make_settings

    config = (ROOT / "deploy" / "nginx.conf").read_text()
    locations = _locations(config)
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'products.db'}"))
    routes = set(app.openapi()["paths"])
    assert "/api/imports" in routes and "/api/imports/{job_id}/events" in routes

    upload = locations["= /api/imports"]
    assert "proxy_request_buffering off;" in upload
    size = re.search(r"client_max_body_size (\d+)m;", upload)
    app_limit = Settings.model_fields["max_upload_bytes"].default
    assert app_limit == GIB
    # The app accepts its limit plus 64 KiB of multipart envelope; nginx must not refuse less.
    assert size and int(size.group(1)) * 1024**2 >= app_limit + 64 * 1024

    [(pattern, events)] = [(key, body) for key, body in locations.items() if "events" in key]
    assert re.fullmatch(pattern.removeprefix("~").strip(), "/api/imports/42/events")
    assert "proxy_buffering off;" in events
    read_timeout = re.search(r"proxy_read_timeout (\w+);", events)
    assert read_timeout and _seconds(read_timeout.group(1)) >= 3600
    assert "text/event-stream" not in config.split("gzip_types", 1)[1].split(";", 1)[0]
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", 'Connection ""'):
        assert f"proxy_set_header {header}" in config
    # The client's own X-Forwarded-For is replaced, never passed on with nginx's entry added.
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in config
    assert "$proxy_add_x_forwarded_for" not in config
    assert "proxy_http_version 1.1;" in config
    assert "return 301 https://$host$request_uri;" in config


def _csv(rows: int) -> bytes:
    lines = ["sku,name,description"]
    lines += [f"SKU-{i:05d},Product {i},Imported through nginx" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _sign_in(client: httpx.Client, database: Database) -> None:
    """The real sign-in form over HTTPS; the session cookie must be Secure and still work."""
    make_user(database)
    page = client.get("/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    response = client.post(
        "/login",
        data={"username": "alice", "password": DEFAULT_PASSWORD, "csrf_token": match.group(1)},
    )
    assert response.status_code == 303, response.text
    assert "secure" in response.headers["set-cookie"].lower()
    me = client.get("/api/me")
    assert me.status_code == 200, me.text
    assert "alice" in me.text


def test_upload_and_live_progress_through_nginx(proxy: Proxy) -> None:
    database = proxy.fleet.database
    with proxy.client() as client:
        _sign_in(client, database)
        auth = {"Authorization": f"Bearer {make_token(database)}"}

        # No worker yet: the job waits in `queued` while its event stream is already open.
        upload = client.post(
            "/api/imports", headers=auth, files={"file": ("big.csv", _csv(ROWS), "text/csv")}
        )
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["id"]

        events: list[tuple[float, dict[str, Any]]] = []
        with client.stream("GET", f"/api/imports/{job_id}/events", headers=auth) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()

            def next_event() -> dict[str, Any]:
                for line in lines:
                    if line.startswith("data:"):
                        event: dict[str, Any] = json.loads(line.removeprefix("data:"))
                        events.append((time.monotonic(), event))
                        return event
                raise AssertionError(f"the stream ended after {[e for _, e in events]}")

            # The app repeats the state every second: two events before any worker exists
            # show nginx passes each one on as it comes, not the whole stream at its end.
            assert next_event()["status"] == next_event()["status"] == "queued"
            proxy.fleet.worker("worker-1", "--queues", "imports,default")
            while (last := next_event())["status"] not in ("completed", "failed", "cancelled"):
                pass

    # Had nginx held the stream back, the reads above would have waited for the job's end,
    # which cannot come without a worker; the app's one-second repeats arrive a second apart.
    assert events[1][0] - events[0][0] > 0.5, "events arrived in one burst"
    assert any(event["status"] == "running" for _, event in events), "no progress while running"
    assert last["status"] == "completed", (last, proxy.fleet.log_text())
    assert (last["rows_created"], last["rows_rejected"]) == (ROWS, 0)

    with proxy.client() as client:
        one = client.get("/api/products", params={"sku": "SKU-02999"}, headers=auth).json()
        assert [item["name"] for item in one["items"]] == ["Product 2999"]
        export = client.get("/api/products/export", headers=auth)
        assert export.status_code == 200
        assert len(export.text.splitlines()) == ROWS + 1

    # Requests were shared between both web processes.
    log = proxy.access_log()
    for port in proxy.web_ports:
        assert f"upstream=127.0.0.1:{port}" in log, log


def test_nginx_redirects_plain_http_and_enforces_upload_limits(proxy: Proxy) -> None:
    redirect = httpx.get(f"{proxy.http}/import?page=2", follow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["location"] == "https://127.0.0.1/import?page=2"

    # Over nginx's limit (the app's 1 GiB default plus the envelope): refused from the
    # Content-Length alone, before a byte of the body is sent or the app is asked.
    host, port = proxy.https.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        proxy.tls.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(
            b"POST /api/imports HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 1100000000\r\nConnection: close\r\n\r\n"
        )
        status_line = tls.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"413", status_line

    # Under nginx's limit but over the app's: the body streams through and the app answers
    # with its own precise 413.
    token = make_token(proxy.fleet.database)
    with proxy.client() as client:
        too_big = client.post(
            "/api/imports",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("big.csv", _csv(200_000), "text/csv")},
        )
        assert too_big.status_code == 413, too_big.text
        assert "upload limit of 8,000,000 bytes" in too_big.json()["detail"]
        # Other routes keep nginx's small default body size.
        big_json = client.post(
            "/api/products",
            headers={"Authorization": f"Bearer {token}"},
            content=b'{"sku": "X", "name": "' + b"n" * 2_000_000 + b'"}',
        )
        assert big_json.status_code == 413


def _clear_address_counters() -> None:
    """Forget this test's per-address sign-in counters (its own window only) in Redis."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        pattern = f"LIMITS:*address:*/{SIGNIN_LIMIT_PER_ADDRESS}/{SIGNIN_WINDOW_MINUTES}/minute"
        for key in list(client.scan_iter(match=pattern, count=1000)):
            client.delete(key)
    finally:
        client.close()


def test_a_forged_x_forwarded_for_is_not_the_address_the_app_sees(proxy: Proxy) -> None:
    """A client that names its own address in X-Forwarded-For still counts, for the per-address
    sign-in limit and in the audit log, as the address nginx saw (loopback here)."""
    database = proxy.fleet.database
    auth = {"Authorization": f"Bearer {make_token(database)}"}
    forged = [f"203.0.113.{i}" for i in range(1, SIGNIN_LIMIT_PER_ADDRESS + 2)]
    statuses = []
    _clear_address_counters()
    with contextlib.ExitStack() as cleanup, proxy.client() as client:
        cleanup.callback(_clear_address_counters)
        for number, address in enumerate(forged):
            page = client.get("/login")
            match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert match, page.text
            response = client.post(
                "/login",
                # Another account each time: only the per-address limit can stop these.
                data={
                    "username": f"nobody-{uuid.uuid4().hex[:8]}-{number}",
                    "password": "wrong",
                    "csrf_token": match[1],
                },
                headers={"X-Forwarded-For": address},
            )
            statuses.append(response.status_code)
        audit = client.get(
            "/api/audit", params={"action": "auth.sign_in_failed"}, headers=auth
        ).json()
    # Each forged address would have had a limit of its own; the real one has only one.
    assert statuses == [401] * SIGNIN_LIMIT_PER_ADDRESS + [429], statuses
    addresses = {entry["ip"] for entry in audit["items"]}
    assert addresses == {"127.0.0.1"}, audit
