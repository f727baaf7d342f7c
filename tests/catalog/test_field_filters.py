"""Filters and sorts on custom fields, on SQLite and PostgreSQL: every type and operator,
products without a value last in either sort direction, the count and estimate paths, and
hostile parameters answered with a 422 that names them (never a 500)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from product_importer.catalog import custom_fields, field_filters, service
from product_importer.catalog.schemas import FieldSort, ProductFilters, ProductSort, SortOrder
from product_importer.db import Database
from tests.catalog.field_helpers import EVERY_TYPE, add_with_fields, define

LONG_A = "L" * 200 + "a"  # two texts alike in their first 200 characters (the indexed prefix)
LONG_B = "L" * 200 + "b"

PRODUCTS: list[dict[str, Any]] = [
    {
        "sku": "A",
        "fields": {
            "vendor": "Acme Corp",
            "stock": 5,
            "price": "19.99",
            "featured": True,
            "launch": "2026-03-01",
            "site": "https://acme.example/a",
            "tags": ["summer", "sale"],
            "colour": "Red",
        },
    },
    {
        "sku": "B",
        "fields": {
            "vendor": "acme corp",
            "stock": 12,
            "price": "1299",
            "featured": False,
            "launch": "2025-12-31",
            "site": "https://b.example/",
            "tags": ["winter"],
            "colour": "Blue",
        },
    },
    {
        "sku": "C",
        "fields": {
            "vendor": "Zeta 50%_off",
            "stock": -3,
            "price": "-0.5",
            "featured": True,
            "launch": "2024-02-29",
            "tags": ["Summer"],
            "colour": "Green",
        },
    },
    {"sku": "D", "fields": {}},
    {"sku": "E", "fields": {"vendor": LONG_A, "stock": 0, "price": "0.1"}},
    {"sku": "F", "fields": {"vendor": LONG_B}},
]


@pytest.fixture
def catalogue(database: Database) -> None:
    define(database, EVERY_TYPE)
    add_with_fields(database, PRODUCTS)


def skus(client: TestClient, query: str) -> list[str]:
    response = client.get(f"/api/products?page_size=100&{query}")
    assert response.status_code == 200, (query, response.text)
    body = response.json()
    found = [item["sku"] for item in body["items"]]
    assert (body["total"], body["total_is_estimate"]) == (len(found), False), query
    return found


FILTERS = [
    # text: equality in any letter case, rechecked past the indexed prefix; contains
    ("field.vendor=ACME CORP", "AB"),
    ("field.vendor=%20acme%20corp%20", "AB"),
    ("field.vendor=acme", ""),
    (f"field.vendor={LONG_A}", "E"),
    (f"field.vendor={LONG_B.lower()}", "F"),
    ("field.vendor.contains=CME", "AB"),
    ("field.vendor.contains=%25_", "C"),  # % and _ are letters here, not wildcards
    ("field.vendor.contains=%25", "C"),
    ("field.vendor.set=false", "D"),
    ("field.vendor.set=true", "ABCEF"),
    # integer
    ("field.stock=12", "B"),
    ("field.stock=12.0", "B"),
    ("field.stock.gt=4", "AB"),
    ("field.stock.gte=5", "AB"),
    ("field.stock.lt=0", "C"),
    ("field.stock.lte=0", "CE"),
    ("field.stock.set=no", "DF"),
    # decimal: compared as numbers, not text ("1299" > "19.99")
    ("field.price.gt=19.99", "B"),
    ("field.price.gte=19.99", "AB"),
    ("field.price=19.990", "A"),
    ("field.price=1,299.00", "B"),
    ("field.price.lt=0", "C"),
    ("field.price.lte=0.1", "CE"),
    # boolean
    ("field.featured=yes", "AC"),
    ("field.featured=false", "B"),
    ("field.featured.set=false", "DEF"),
    # date
    ("field.launch=2025-12-31", "B"),
    ("field.launch.gte=2026-01-01", "A"),
    ("field.launch.lt=2025-01-01", "C"),
    ("field.launch.lte=2025-12-31", "BC"),
    # url
    ("field.site=https://ACME.example/a", "A"),
    ("field.site.contains=b.example", "B"),
    # list: contains the element (exactly), or every element given
    ("field.tags=summer", "A"),
    ("field.tags=Summer", "C"),
    ("field.tags=summer,%20sale", "A"),
    ("field.tags=summer,winter", ""),
    ("field.tags.set=true", "ABC"),
    # choice: read as the field reads it (any letter case)
    ("field.colour=red", "A"),
    ("field.colour.contains=E", "ABC"),
    # combined with each other and with the built-in filters
    ("field.stock.gt=0&field.featured=true", "A"),
    ("field.stock.gte=0&field.stock.lte=5", "AE"),
    ("field.featured=true&sku=C", "C"),
    ("field.stock.gte=-10&q=product", "ABCE"),
    ("field.stock.gt=0&name=Product%20B", "B"),
    # a blank value filters nothing, as for the built-in filters
    ("field.stock.gt=", "ABCDEF"),
]


@pytest.mark.usefixtures("catalogue")
def test_filters_per_type_and_operator(client: TestClient) -> None:
    for query, expected in FILTERS:
        assert skus(client, query) == list(expected), query


@pytest.mark.usefixtures("catalogue")
def test_sorts_per_type_keep_products_without_a_value_last(client: TestClient) -> None:
    cases = {
        "field.stock": "CEABDF",
        "-field.stock": "BAECFD",
        "field.price": "CEABDF",
        "-field.price": "BAECFD",
        "field.vendor": "ABEFCD",  # acme corp twice (by id), L…a, L…b, zeta
        "-field.vendor": "CFEBAD",
        "field.launch": "CBADEF",
        "-field.launch": "ABCFED",
        "field.featured": "BACDEF",
        "-field.featured": "CABFED",
        "field.colour": "BCADEF",
    }
    for sort, expected in cases.items():
        assert skus(client, f"sort={sort}") == list(expected), sort
    # A list sorts by its text lower-cased: ["summer"] (C) and ["summer","sale"] (A) part on
    # punctuation, which each database collates its own way; ["winter"] (B) after both.
    found = skus(client, "sort=field.tags")
    assert found[2:] == list("BDEF") and sorted(found[:2]) == ["A", "C"], found
    # A filter and a sort on fields together, and pages of a field sort.
    assert skus(client, "field.stock.set=true&sort=-field.price") == list("BAEC")
    first = client.get("/api/products?sort=field.stock&page_size=4").json()
    second = client.get("/api/products?sort=field.stock&page_size=4&page=2").json()
    assert [item["sku"] for item in first["items"] + second["items"]] == list("CEABDF")
    assert (first["total"], second["total"]) == (6, 6)


@pytest.mark.usefixtures("catalogue")
def test_the_openapi_document_describes_field_filters_and_sorts(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/api/products"]["get"]
    assert "field.<key>.gt|gte|lt|lte" in operation["description"]
    [sort] = [param for param in operation["parameters"] if param["name"] == "sort"]
    schemas = [
        document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        if "$ref" in schema
        else schema
        for schema in sort["schema"]["anyOf"]
    ]
    assert any("-updated_at" in schema.get("enum", []) for schema in schemas), schemas
    assert any(schema.get("pattern") == field_filters.SORT_PATTERN for schema in schemas)
    assert sort["schema"]["default"] == "sku"
    export = document["paths"]["/api/products/export"]["get"]
    assert "field.<key>" in export["description"]


HOSTILE = [
    ("field.nope=1", "field.nope", "no field 'nope'"),
    ("field.price.gt=abc", "field.price.gt", "not a number"),
    ("field.price.gt=1e400", "field.price.gt", "not a number"),
    ("field.price.gt=NaN", "field.price.gt", "not a number"),
    ("field.price.lt=-inf", "field.price.lt", "not a number"),
    ("field.price=1.00000000001", "field.price", "decimal places"),
    ("field.price.gt=" + "9" * 40, "field.price.gt", "too large"),
    ("field.vendor.gt=1", "field.vendor.gt", "text field"),
    ("field.name.gt=1", "field.name.gt", "no field 'name'"),  # a built-in, not a field
    ("field.stock.contains=1", "field.stock.contains", "integer field"),
    ("field.tags.gt=a", "field.tags.gt", "list field"),
    ("field.tags.contains=a", "field.tags.contains", "list field"),
    ("field.featured.lt=true", "field.featured.lt", "boolean field"),
    ("field.stock.gt=12.5", "field.stock.gt", "not a whole number"),
    ("field.stock=99999999999999999999", "field.stock", "64-bit"),
    ("field.launch.gt=2026-02-30", "field.launch.gt", "not a date on the calendar"),
    ("field.launch=tomorrow", "field.launch", "not a date"),
    ("field.featured=maybe", "field.featured", "must be true/false"),
    ("field.featured.set=perhaps", "field.featured.set", "must be true/false"),
    ("field.colour=purple", "field.colour", "not one of the choices"),
    ("field.site=ftp://example.com/x", "field.site", "http"),
    ("field.vendor=" + "v" * 10_000, "field.vendor", "10000 characters"),
    ("field.vendor.contains=" + "v" * 10_000, "field.vendor.contains", "10000 characters"),
    ("field.tags=" + "t" * 10_000, "field.tags", "characters"),
    ("field.tags=" + ",".join(f"t{i}" for i in range(150)), "field.tags", "150 items"),
    ("field.tags=,", "field.tags", "no list element"),
    ("field.vendor=a%00b", "field.vendor", "control characters"),
    ("field.vendor.contains=%07", "field.vendor.contains", "control characters"),
    ("field..x=1", "field..x", "field.<key>"),
    ("field.=1", "field.", "field.<key>"),
    ("field.price.bogus=1", "field.price.bogus", "unknown operator 'bogus'"),
    ("field.price.gt.x=1", "field.price.gt.x", "field.<key>"),
    ("field.PRICE=1", "field.PRICE", "not a field key"),
    ("field.nope.gt=", "field.nope.gt", "no field 'nope'"),
    ("field.vendor.gt=", "field.vendor.gt", "text field"),
    ("field." + "k" * 10_000 + "=1", "field." + "k" * 74 + "…", "not a field key"),
    ("&".join(f"field.stock.gt={i}" for i in range(21)), "field.stock.gt", "at most 20"),
]


@pytest.mark.usefixtures("catalogue")
def test_hostile_field_parameters_are_422_naming_them(client: TestClient) -> None:
    for query, parameter, reason in HOSTILE:
        for path in ("/api/products", "/api/products/export"):
            response = client.get(f"{path}?{query}")
            assert response.status_code == 422, (query, response.text[:300])
            [error] = response.json()["detail"]
            assert error["loc"] == ["query", parameter], (query, error)
            assert reason in error["msg"] and parameter in error["msg"], (query, error)


@pytest.mark.usefixtures("catalogue")
def test_malformed_or_unknown_field_sorts_are_422(client: TestClient) -> None:
    unknown = client.get("/api/products?sort=-field.nope")
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["detail"] == [
        {
            "loc": ["query", "sort"],
            "msg": "sort: there is no field 'nope' to sort by (see GET /api/fields)",
            "type": "value_error",
        }
    ]
    for sort in ("field.PRICE", "-field.", "field.x.y", "field", "price", "field." + "k" * 64):
        response = client.get(f"/api/products?sort={sort}")
        assert response.status_code == 422, (sort, response.text)
        assert all(error["loc"][:2] == ["query", "sort"] for error in response.json()["detail"])


def test_twenty_field_filters_are_accepted(client: TestClient, database: Database) -> None:
    define(database, {"stock": ("integer", None)})
    add_with_fields(database, [{"sku": "S", "fields": {"stock": 5}}])
    query = "&".join(f"field.stock.gt={i}" for i in range(-15, 5))
    assert skus(client, query) == ["S"]


# --- the count, estimate and sampling paths ------------------------------------------------


def _page(
    database: Database,
    query: list[tuple[str, str]],
    sort: SortOrder = ProductSort.SKU,
    number: int = 1,
    limit: int = 10,
    **filters: Any,
) -> service.ProductPage:
    with database.session() as session:
        fields = field_filters.parse_filters(custom_fields.by_key(session), query)
        criteria = ProductFilters(fields=fields, **filters)
        return service.list_page(session, criteria, sort, number, 20, limit)


@pytest.fixture
def many(database: Database) -> None:
    """300 products: stock = i, every third tagged "x", the odd ones without a price."""
    define(
        database, {"stock": ("integer", None), "tags": ("list", None), "price": ("decimal", None)}
    )
    add_with_fields(
        database,
        [
            {
                "sku": f"M-{i:03d}",
                "name": f"Walnut shelf {i}" if i % 2 else f"Pine shelf {i}",
                "fields": {
                    "stock": i,
                    **({"tags": ["x"]} if i % 3 == 0 else {}),
                    **({} if i % 2 else {"price": f"{i}.5"}),
                },
            }
            for i in range(300)
        ],
    )


@pytest.mark.usefixtures("many")
def test_field_filters_count_exactly_up_to_the_limit_then_estimate(database: Database) -> None:
    few = _page(database, [("field.stock.lt", "5")])
    assert (few.total, few.total_is_estimate) == (5, False)
    assert [item.sku for item in few.items] == [f"M-{i:03d}" for i in range(5)]
    # Up to five times the limit: gathered and counted exactly.
    gathered = _page(database, [("field.stock.lt", "40")])
    assert (gathered.total, gathered.total_is_estimate) == (40, False)
    # Far more than the limit: an estimate, never below the limit, and the page is right.
    for query, matches in (
        ([("field.stock.gte", "0")], 300),
        ([("field.tags", "x")], 100),
        ([("field.price.set", "true")], 150),
    ):
        estimated = _page(database, query)
        assert estimated.total_is_estimate, query
        assert estimated.total > 10 and matches * 0.5 <= estimated.total <= matches * 1.5, (
            query,
            estimated.total,
        )
        assert len(estimated.items) == 20
    tagged = _page(database, [("field.tags", "x")], FieldSort("stock", "integer", True))
    assert [item.fields["stock"] for item in tagged.items] == list(range(297, 236, -3))[:20]
    # The last page of an estimate is exact (a short page ends the list).
    last = _page(database, [("field.price.set", "yes")], ProductSort.SKU, number=8)
    assert (last.total, last.total_is_estimate, len(last.items)) == (150, False, 10)


@pytest.mark.usefixtures("many")
def test_field_filters_combine_with_free_text(database: Database) -> None:
    # q alone may be answered from the search table only (PostgreSQL): a field filter must
    # still narrow it.
    walnut = _page(database, [("field.stock.lt", "10")], q="walnut")
    assert [item.sku for item in walnut.items] == [f"M-{i:03d}" for i in (1, 3, 5, 7, 9)]
    assert walnut.total == 5
    priced = _page(database, [("field.price.gte", "250")], FieldSort("price", "decimal"), q="pine")
    assert [item.fields["price"] for item in priced.items] == [
        f"{i}.5" for i in range(250, 300, 2)
    ][:20]
    assert (priced.total, priced.total_is_estimate) == (25, False)


@pytest.mark.usefixtures("many")
def test_a_field_sort_pages_through_every_product_once(database: Database) -> None:
    for descending in (False, True):
        sort = FieldSort("price", "decimal", descending)
        seen = []
        for number in range(1, 16):
            seen.extend(_page(database, [], sort, number).items)
        priced = [item.fields["price"] for item in seen[:150]]
        expected = [f"{i}.5" for i in range(0, 300, 2)]
        assert priced == (expected[::-1] if descending else expected)
        unpriced = [item.sku for item in seen[150:]]
        odd = [f"M-{i:03d}" for i in range(1, 300, 2)]
        assert unpriced == (odd[::-1] if descending else odd)
