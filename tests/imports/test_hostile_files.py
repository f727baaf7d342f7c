"""Files built to hurt the server: one endless line, a gzip bomb, a sea of blank lines.

The files are built here, in memory, as many copies of one small gzip member (a gzip file may
hold several, read one after the other), so a 300 MB line costs about 300 KB and no time. The
server runs as a real subprocess, so its peak memory (VmHWM) is the honest measure.
"""

from __future__ import annotations

import gzip
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from product_importer.app import create_app
from product_importer.db import Database
from tests.conftest import make_settings
from tests.factories import sign_in
from tests.imports.conftest import wait_for
from tests.processes import cli_env, free_port, run_cli, start_server

MIB = 1024 * 1024
MEMORY_LIMIT_MB = 500


def repeated_gzip(head: bytes, block: bytes, copies: int, tail: bytes = b"") -> bytes:
    """gzip of head + block * copies + tail, built from one compressed copy of `block`."""
    member = gzip.compress(block, compresslevel=9)
    return gzip.compress(head) + member * copies + gzip.compress(tail)


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


class Server:
    def __init__(self, database: Database, home: Path) -> None:
        env = cli_env(home, database.engine.url.render_as_string(hide_password=False))
        token = run_cli("token", "create", "hostile-files", env=env).stdout.strip()
        self.headers = {"Authorization": f"Bearer {token}"}
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = start_server(env, port)

    def post(self, path: str, content: bytes, name: str = "p.csv.gz") -> httpx.Response:
        return httpx.post(
            self.url + path, headers=self.headers, files={"file": (name, content)}, timeout=120
        )

    def job(self, job_id: int) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/imports/{job_id}", headers=self.headers, timeout=30)
        job: dict[str, Any] = response.json()
        return job

    def wait(self, job_id: int, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in ("completed", "failed", "cancelled"):
                return job
            time.sleep(0.1)
        raise AssertionError(f"import {job_id} did not end in {timeout}s")

    def answers(self) -> bool:
        return httpx.get(f"{self.url}/healthz", timeout=10).status_code == 200

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def server(database: Database, tmp_path: Path) -> Iterator[Server]:
    running = Server(database, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_one_huge_gzipped_line_is_refused_with_memory_bounded(server: Server) -> None:
    """Default limits: 300 MB of `a` in one line, as the header and as the first data row."""
    started_mb = peak_memory_mb(server.process.pid)
    block = b"a" * MIB
    as_header = repeated_gzip(b"", block, 300)
    assert len(as_header) < 2 * MIB
    response = server.post("/api/imports", as_header)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("Line 1 is longer than 8 MiB")
    response = server.post("/api/imports/preview", as_header)
    assert response.status_code == 422, response.text

    as_row = repeated_gzip(b"sku,name\n", block, 300, b"\nA-1,Chair\n")
    response = server.post("/api/imports", as_row)  # known at once: the line is near the start
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("Line 2 is longer than 8 MiB")

    # After 20,000 good rows the upload check (the header) cannot know; the job finds it.
    rows = b"".join(b"R-%d,Row %d\n" % (i, i) for i in range(20_000))
    late = repeated_gzip(b"sku,name\n" + rows, block, 300, b"\nA-1,Chair\n")
    response = server.post("/api/imports/preview", late)
    assert response.status_code == 200, response.text  # its 20 rows come first
    response = server.post("/api/imports", late)
    assert response.status_code == 202, response.text
    job = server.wait(response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("Line 20002 is longer than 8 MiB (8,388,608 characters)")

    # The costliest row within the limit: 7 MiB of tiny fields (~60 bytes each in memory).
    tiny = repeated_gzip(b"sku,name\n" + rows, b"ab," * 349_525, 7, b"\nA-1,Chair\n")
    job = server.wait(server.post("/api/imports", tiny).json()["id"])
    assert (job["status"], job["rows_rejected"], job["rows_created"]) == ("completed", 1, 20_001)
    errors = httpx.get(
        f"{server.url}/api/imports/{job['id']}/errors", headers=server.headers, timeout=60
    ).text
    assert "[... cut: 2,446,676 fields in the row]" in errors
    assert server.answers()
    peak = peak_memory_mb(server.process.pid)
    print(f"server peak memory: {peak:.0f} MB (after start-up {started_mb:.0f} MB)")
    assert peak < MEMORY_LIMIT_MB


def test_blank_lines_show_progress_and_cancel_within_a_second(server: Server) -> None:
    """A 1 GiB gzip of blank lines (minutes of reading): progress moves, a cancel is quick.

    A plain 64 MiB file is read in a few seconds on a quiet machine: CI's import completed before
    six moves of its progress were seen.
    """
    content = repeated_gzip(b"sku,name\n", b"\n" * MIB, 1024, b"A-1,Chair\n")
    job_id = server.post("/api/imports", content, "blank.csv.gz").json()["id"]
    seen: list[tuple[float, float]] = []  # (when, percent) each time the percent moved
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < 6:
        job = server.job(job_id)
        assert job["status"] in ("queued", "running"), job
        if job["status"] == "running" and (not seen or job["percent"] > seen[-1][1]):
            seen.append((time.monotonic(), job["percent"]))
        time.sleep(0.05)
    assert len(seen) == 6, seen
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(seen[1:])]
    assert max(gaps) < 1.5, gaps  # progress at least once a second, with room for a busy CI
    assert server.job(job_id)["rows_processed"] == 0

    asked = time.monotonic()
    assert httpx.post(
        f"{server.url}/api/imports/{job_id}/cancel", headers=server.headers
    ).is_success
    while server.job(job_id)["status"] != "cancelled":
        assert time.monotonic() - asked < 5, "the cancel was not honoured"
        time.sleep(0.02)
    latency = time.monotonic() - asked
    print(f"cancel took {latency:.2f}s; progress gaps {[round(g, 2) for g in gaps]}")
    assert latency < 1.5
    assert server.answers()


@pytest.fixture
def small_limit_client(database: Database, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path,
        database.engine.url.render_as_string(hide_password=False),
        max_decompressed_bytes=2_000_000,
    )
    with TestClient(create_app(settings, database)) as client:
        sign_in(client, database)
        yield client


def test_a_gzip_inflating_past_the_limit_fails_the_job(small_limit_client: TestClient) -> None:
    client = small_limit_client
    rows = b"".join(b"S-%d,Name %d\n" % (i, i) for i in range(200_000))  # about 3.5 MB
    content = gzip.compress(b"sku,name\n" + rows)
    response = client.post("/api/imports", files={"file": ("big.csv.gz", content)})
    assert response.status_code == 202, response.text  # the start of the file is fine
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"] == (
        "The file is larger than 2,000,000 bytes once decompressed (the limit for .gz files, "
        "PRODUCT_IMPORTER_MAX_DECOMPRESSED_BYTES); nothing was imported."
    )
    # The preview reads only its rows: well within the limit.
    preview = client.post("/api/imports/preview", files={"file": ("big.csv.gz", content)})
    assert preview.status_code == 200 and len(preview.json()["rows"]) == 20
    # A file within the limit imports as before.
    small = gzip.compress(b"sku,name\n" + rows[:100_000])
    job = wait_for(
        client, client.post("/api/imports", files={"file": ("s.gz", small)}).json()["id"]
    )
    assert job["status"] == "completed", job
