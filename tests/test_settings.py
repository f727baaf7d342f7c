from pathlib import Path

import pytest

from product_importer.db import DatabaseConfigError, normalise_url
from product_importer.settings import Settings


def test_defaults_to_a_sqlite_file_in_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PRODUCT_IMPORTER_HOME", str(tmp_path))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'products.db'}"


def test_reads_database_url_and_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@db/catalogue")
    monkeypatch.setenv("PRODUCT_IMPORTER_API_TOKEN", "s3cret-token")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.resolved_database_url == "postgresql+psycopg://u@db/catalogue"
    assert settings.api_token is not None
    assert "s3cret-token" not in repr(settings)


def test_reads_a_dotenv_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=sqlite:////tmp/from-dotenv.db\n")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.resolved_database_url == "sqlite:////tmp/from-dotenv.db"


def test_session_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(_env_file=None, home=tmp_path).session_secret  # type: ignore[call-arg]
    second = Settings(_env_file=None, home=tmp_path).session_secret  # type: ignore[call-arg]
    assert first == second
    assert len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u@h:5433/db", "postgresql+psycopg://u@h:5433/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///var/products.db", "sqlite:///var/products.db"),
    ],
)
def test_database_urls_are_normalised(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://root@localhost/db", "only sqlite and postgresql"),
        ("not a url", "not a valid database URL"),
        ("", "not a valid database URL"),
    ],
)
def test_unsupported_database_urls_are_refused(given: str, message: str) -> None:
    with pytest.raises(DatabaseConfigError, match=message):
        normalise_url(given)
