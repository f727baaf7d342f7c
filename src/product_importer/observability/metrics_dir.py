"""Where several web processes pool their metrics (prometheus-client's multiprocess mode).

Kept apart from `metrics` because prometheus_client reads the variable when it is imported:
`serve --workers N` sets it before anything imports that library.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def prepare(directory: Path) -> None:
    """Start from an empty folder: files left by a previous run would add old numbers in."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
