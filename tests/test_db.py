from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from product_importer.catalog.models import Product, sku_key
from product_importer.db import Database
from tests.factories import make_product


def test_sqlite_runs_in_wal_mode_with_foreign_keys(database: Database) -> None:
    if database.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_timestamps_come_back_as_aware_utc(database: Database) -> None:
    product_id = make_product(database, "TS-1")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with database.session() as session:
        product = session.get(Product, product_id)
        assert product is not None
        product.updated_at = moment
    with database.session() as session:
        stored = session.scalar(select(Product.updated_at).where(Product.id == product_id))
    assert stored == moment
    assert stored is not None and stored.tzinfo is not None
    assert stored.astimezone(UTC).hour == 1


def test_unit_of_work_rolls_back_on_error(database: Database) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(Product(sku="RB-1", sku_key="rb-1", name="x", description=""))
        session.flush()
        raise RuntimeError("boom")
    with database.session() as session:
        assert session.scalar(select(Product).where(Product.sku == "RB-1")) is None


@pytest.mark.parametrize(
    ("first", "second"),
    [("ABC-1", "abc-1"), ("Äpfel", "äpfel"), ("STRASSE", "straße"), (" pad-1 ", "PAD-1")],
)
def test_sku_is_unique_case_insensitively(database: Database, first: str, second: str) -> None:
    make_product(database, first)
    with pytest.raises(IntegrityError):
        make_product(database, second)


def test_sku_key_trims_and_casefolds() -> None:
    assert sku_key("  ÄPFEL-Straße ") == "äpfel-strasse"
