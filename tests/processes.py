"""Running the product-importer command and server as real subprocesses, as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def cli_env(home: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODUCT_IMPORTER_")}
    env.pop("DATABASE_URL", None)
    env.pop("BROKER_URL", None)  # embedded mode unless a test asks for a broker
    env["PRODUCT_IMPORTER_HOME"] = str(home)
    # Error panels wrap at the terminal's width (80 without one): a long temporary path could
    # split the words a test looks for.
    env["COLUMNS"] = "200"
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def run_cli(
    *args: str, env: dict[str, str], input_text: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "product_importer", *args],
        env=env,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    """Start `product-importer serve` and wait until /healthz answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "product_importer", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60  # generous: a loaded 2-core machine starts a server slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.communicate()[0]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start in 30 s")
