"""Structured logs: the task context on every line, as JSON or text, from a real server."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from product_importer.observability import logs
from tests.processes import cli_env, free_port, run_cli

TOKEN = "pi_log-test-token-0123456789"


def _capture(log_format: logs.LogFormat) -> tuple[logging.Logger, io.StringIO]:
    """A logger with the app's handler set-up, on its own stream (the root is pytest's)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.TaskContextFilter())
    handler.setFormatter(
        logs.JsonLineFormatter() if log_format == "json" else logging.Formatter(logs.TEXT_FORMAT)
    )
    logger = logging.getLogger(f"tests.observability.{log_format}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_records_inside_a_task_carry_its_ids_and_never_its_other_arguments() -> None:
    logger, stream = _capture("json")
    kwargs = {"endpoint_id": 7, "lease_token": "lease-secret"}
    with logs.task_context("webhooks.deliver", "webhooks", kwargs):
        logger.info("sending %s", "now")
    logger.warning("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "sending now"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "tests.observability.json"
    assert (inside["task"], inside["queue"], inside["endpoint_id"]) == (
        "webhooks.deliver",
        "webhooks",
        7,
    )
    assert inside["worker"] == logs.worker_name()
    assert "T" in inside["time"] and inside["time"].endswith("+00:00")
    assert "lease-secret" not in stream.getvalue()
    assert "task" not in outside and outside["message"] == "outside"


def test_text_lines_show_the_context_compactly() -> None:
    logger, stream = _capture("text")
    with logs.task_context("imports.run", "imports", {"job_id": 12}):
        logger.info("merging")
    logger.info("idle")
    assert stream.getvalue().splitlines() == [
        "INFO tests.observability.text [imports.run job=12]: merging",
        "INFO tests.observability.text: idle",
    ]


@contextmanager
def _serve(tmp_path: Path, log_format: str) -> Iterator[tuple[str, Path]]:
    env = cli_env(tmp_path / "home") | {
        "PRODUCT_IMPORTER_LOG_FORMAT": log_format,
        "PRODUCT_IMPORTER_API_TOKEN": TOKEN,
    }
    port = free_port()
    stderr = tmp_path / "stderr.log"
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "product_importer", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield base, stderr
    finally:
        process.terminate()
        process.wait(timeout=20)


def _import(base: str) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(
        f"{base}/api/imports",
        headers=auth,
        files={"file": ("p.csv", b"sku,name\nA-1,Chair\nB-2,Table\n", "text/csv")},
    )
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 30
    while True:
        job: dict[str, Any] = httpx.get(
            f"{base}/api/imports/{response.json()['id']}", headers=auth
        ).json()
        if job["status"] == "completed":
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def test_a_json_server_writes_one_object_a_line_and_the_import_carries_its_job_id(
    tmp_path: Path,
) -> None:
    with _serve(tmp_path, "json") as (base, stderr):
        job = _import(base)
    # The server has stopped: every line is written.
    lines = [json.loads(line) for line in stderr.read_text().splitlines()]
    assert lines, "no log lines"
    for line in lines:
        assert {"time", "level", "logger", "message", "worker"} <= line.keys(), line
    ours = [line for line in lines if line.get("job_id") == job["id"]]
    assert any(line["logger"] == "product_importer.imports.pipeline" for line in ours), lines
    assert all(line["task"] == "imports.run" and line["queue"] == "imports" for line in ours)
    # uvicorn's own loggers use the same format.
    assert any(line["logger"] == "uvicorn.access" for line in lines)
    assert any("Started server process" in line["message"] for line in lines)


def test_a_text_server_marks_the_import_lines_with_the_job(tmp_path: Path) -> None:
    with _serve(tmp_path, "text") as (base, stderr):
        job = _import(base)
    text = stderr.read_text()
    assert f"INFO product_importer.imports.pipeline [imports.run job={job['id']}]: " in text
    assert "INFO uvicorn.error: Started server process" in text


@pytest.mark.parametrize(
    ("variable", "bad", "named"),
    [
        ("PRODUCT_IMPORTER_LOG_FORMAT", "yaml", "log_format"),
        ("PRODUCT_IMPORTER_LOG_FORMAT", "", "log_format"),
        ("PRODUCT_IMPORTER_LOG_LEVEL", "loud", "log_level"),
        ("PRODUCT_IMPORTER_LOG_LEVEL", "20", "log_level"),
    ],
)
def test_bad_log_settings_exit_2_with_one_line(
    tmp_path: Path, variable: str, bad: str, named: str
) -> None:
    result = run_cli("migrate", env=cli_env(tmp_path) | {variable: bad})
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: invalid configuration:") and named in line, line


def test_the_import_command_logs_json_with_its_job_id(tmp_path: Path) -> None:
    source = tmp_path / "products.csv"
    source.write_bytes(b"sku,name\nA-1,Chair\nB-2,Table\n")
    env = cli_env(tmp_path / "home") | {"PRODUCT_IMPORTER_LOG_FORMAT": "json"}
    result = run_cli("import", str(source), env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(
        line.get("job_id") == 1 and line["logger"] == "product_importer.imports.pipeline"
        for line in lines
    ), lines
