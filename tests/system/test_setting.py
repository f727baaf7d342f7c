"""PRODUCT_IMPORTER_HEARTBEAT_SECONDS: from the environment; hostile values refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from product_importer.settings import Settings
from tests.processes import cli_env, run_cli


def test_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).heartbeat_seconds == 10  # type: ignore[call-arg]
    monkeypatch.setenv("PRODUCT_IMPORTER_HEARTBEAT_SECONDS", "2.5")
    assert Settings(_env_file=None).heartbeat_seconds == 2.5  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["0", "-1", "0.1", "3601", "nan", "inf", "ten", "", "1e309"])
def test_hostile_values_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PRODUCT_IMPORTER_HEARTBEAT_SECONDS", value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_command_says_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    env["PRODUCT_IMPORTER_HEARTBEAT_SECONDS"] = "0"
    result = run_cli("serve", "--port", "1", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: invalid configuration: heartbeat_seconds: "
        "Input should be greater than or equal to 0.2"
    ]
    assert "Traceback" not in result.stdout + result.stderr
