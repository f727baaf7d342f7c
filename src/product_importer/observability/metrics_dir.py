"""Where several web processes pool their metrics (prometheus-client's multiprocess mode).

Kept apart from `metrics` because prometheus_client reads the variable when it is imported:
`serve --workers N` sets it before anything imports that library.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def prepare(directory: Path) -> None:
    """Start from an empty folder: files left by a previous run would add old numbers in."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def parse_address(host: str, port: str | None) -> tuple[str, int] | None:
    """A worker's --metrics-host/--metrics-port, checked before anything starts; None when
    metrics are off. ValueError says what is wrong."""
    if port is None:
        return None
    port = port.strip()
    # ASCII digits only: str.isdigit() also admits "²", which int() refuses.
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise ValueError(f"--metrics-port must be a number from 1 to 65535, not {port[:40]!r}.")
    host = host.strip()
    unusable = f"--metrics-host {host[:80]!r} is not an address or a name this machine resolves."
    if not host or any(c.isspace() or c in "/@?#[]" for c in host):
        raise ValueError(unusable)
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        raise ValueError(unusable) from None
    return host, int(port)
