"""Search folds accents as it folds letter case, for the free text and the name and description
filters alike, on both databases: `name=senor` finds "Señor" as `q=senor` does."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import column, select, table, text

from product_importer.catalog.search.matching import column_like
from product_importer.db import Database, _fold_slowly, fold_text, make_engine
from tests.catalog.helpers import add_products

# ASCII, Latin letters with accents, letters folded by hand, combining marks, a ligature,
# fullwidth forms, Greek (with the capital sigma), Cyrillic, CJK and a symbol.
FOLD_ALPHABET = list(
    "aZ09 -_.,'\"éÈñÑçÇüÖåÅøØæÆœŒßðÞłŁđİı\u0301\u0308\u0327ﬁﬂＡｚ１ΣσςΑλφαДжЯ漢字€"
)


@pytest.fixture
def accented(database: Database) -> None:
    add_products(
        database,
        [
            {"sku": "S-1", "name": "Señor Smørrebrød", "description": "Crème brûlée, naïve"},
            {"sku": "S-2", "name": "Plain chair", "description": "Oak"},
            {"sku": "Ñu-3", "name": "Straße café", "description": "ÜBER"},
        ],
    )


@pytest.mark.usefixtures("accented")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=senor", ["S-1"]),
        ("q=SEÑOR", ["S-1"]),
        ("name=senor", ["S-1"]),
        ("name=SENOR", ["S-1"]),
        ("name=señor", ["S-1"]),
        ("name=smorrebrod", ["S-1"]),
        ("description=creme brulee", ["S-1"]),
        ("description=naive", ["S-1"]),
        ("q=creme senor", ["S-1"]),
        ("name=cafe", ["Ñu-3"]),
        ("name=strasse", ["Ñu-3"]),
        ("description=uber", ["Ñu-3"]),
        ("q=nu-3", ["Ñu-3"]),
        ("name=é", ["Ñu-3", "S-1"]),  # a short term is tested row by row, folded the same way
        ("description=senor", []),
        ("name=creme", []),
    ],
)
def test_accents_fold_for_q_name_and_description(
    client: TestClient, query: str, expected: list[str]
) -> None:
    response = client.get(f"/api/products?{query}&sort=name")
    assert response.status_code == 200, response.text
    assert sorted(item["sku"] for item in response.json()["items"]) == sorted(expected)
    assert response.json()["total"] == len(expected)


@pytest.mark.usefixtures("accented")
def test_an_edited_product_is_found_by_its_folded_text(client: TestClient) -> None:
    created = client.post("/api/products", json={"sku": "J-1", "name": "Jalapeño dip"})
    assert created.status_code == 201, created.text
    assert [p["sku"] for p in client.get("/api/products?name=jalapeno").json()["items"]] == ["J-1"]
    patched = client.patch(f"/api/products/{created.json()['id']}", json={"name": "Crème dip"})
    assert patched.status_code == 200
    assert client.get("/api/products?name=jalapeno").json()["total"] == 0
    assert [p["sku"] for p in client.get("/api/products?q=creme").json()["items"]] == [
        "J-1",
        "S-1",
    ]


def test_fold_text() -> None:
    assert (
        fold_text("Señor Smørrebrød ÆSIR Straße İstanbul")
        == "senor smorrebrod aesir strasse istanbul"
    )
    assert fold_text("Plain") == "plain"
    assert fold_text(None) is None


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(FOLD_ALPHABET), max_size=40))
def test_the_fast_fold_equals_folding_the_whole_text(value: str) -> None:
    """fold_text folds only the runs of non-ASCII characters when it can; the result must be
    what folding the whole text gives, for any mix (accents, combining marks, ligatures, Greek
    with its final sigma, Cyrillic, CJK)."""
    assert fold_text(value) == _fold_slowly(value)


_SQLITE = make_engine("sqlite://")
_VALUES = table("fold_values", column("name"))


@settings(max_examples=1500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(FOLD_ALPHABET), max_size=30),
    st.text(alphabet=st.sampled_from(FOLD_ALPHABET), min_size=1, max_size=4),
)
def test_sqlite_row_tests_fold_only_where_it_matters(value: str, term: str) -> None:
    """On SQLite a row test skips pi_fold for ASCII values and for values holding the folded
    term as they are: the answer must be what folding every value gives."""
    expected = (fold_text(term) or "") in (fold_text(value) or "")
    with _SQLITE.begin() as connection:
        connection.execute(text("CREATE TEMP TABLE IF NOT EXISTS fold_values (name TEXT)"))
        connection.execute(text("DELETE FROM fold_values"))
        connection.execute(text("INSERT INTO fold_values VALUES (:value)"), {"value": value})
        test = column_like("sqlite", "name", term, rows=_VALUES.c)
        assert bool(connection.scalar(select(test).select_from(_VALUES))) is expected
