"""Column mapping and suggestions, without a database: parsing, resolving, synonyms."""

from __future__ import annotations

import pytest

from product_importer.imports.columns import FileFormatError
from product_importer.imports.mapping import (
    HeaderMismatch,
    MappingInvalid,
    header_key,
    parse_mapping,
    resolve,
)
from product_importer.imports.suggest import SYNONYMS, suggest

SHOPIFY_HEADER = [
    "Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags", "Published",
    "Option1 Name", "Option1 Value", "Variant SKU", "Variant Grams", "Variant Price",
    "Variant Barcode", "Image Src", "SEO Title", "SEO Description", "Status",
]  # fmt: skip
WOO_HEADER = [
    "ID", "Type", "SKU", "Name", "Published", "Is featured?", "Visibility in catalog",
    "Short description", "Description", "Tax status", "In stock?", "Stock", "Regular price",
    "Categories", "Tags", "Images",
]  # fmt: skip


def test_a_mapping_resolves_to_column_positions_and_ignores_the_rest() -> None:
    columns = resolve(
        SHOPIFY_HEADER,
        {"sku": "variant sku", "name": " Title ", "description": "Body (HTML)", "active": "STATUS"},
    )
    assert (columns.sku, columns.name, columns.description, columns.active) == (10, 1, 2, 17)
    assert "Handle" in columns.ignored and "Variant SKU" not in columns.ignored
    assert len(columns.ignored) == len(SHOPIFY_HEADER) - 4


def test_without_a_mapping_the_header_must_name_our_fields() -> None:
    columns = resolve([" SKU", "\ufeffName", "price"])
    assert (columns.sku, columns.name, columns.description, columns.ignored) == (
        0,
        1,
        None,
        ("price",),
    )
    with pytest.raises(HeaderMismatch) as caught:
        resolve(SHOPIFY_HEADER)
    assert "no sku and no name column" in str(caught.value)
    assert "'Variant SKU'" in str(caught.value)
    assert caught.value.columns == SHOPIFY_HEADER


def test_a_mapped_column_that_is_missing_or_ambiguous_is_refused() -> None:
    with pytest.raises(HeaderMismatch, match="names the column 'Item' for sku, but the file has"):
        resolve(["Code", "Title"], {"sku": "Item", "name": "Title"})
    with pytest.raises(FileFormatError, match="'Code' \\(mapped to sku\\) more than once"):
        resolve(["Code", "Title", "code"], {"sku": "Code", "name": "Title"})
    # A repeated column that is not mapped does not matter.
    assert resolve(["Code", "Title", "x", "X"], {"sku": "Code", "name": "Title"}).sku == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not valid JSON"),
        ("{sku: Title}", "not valid JSON"),
        ("[" * 10_000, "not valid JSON"),
        ('["sku", "name"]', "must be a JSON object of field to column, not list"),
        ('"sku"', "not str"),
        ("null", "not NoneType"),
        ('{"sku": "A"}', "must name a column for name"),
        ('{"name": "A", "description": "B"}', "must name a column for sku"),
        ('{"sku": "", "name": "A"}', "must name a column for sku"),
        ('{"sku": "A", "name": "a "}', "gives the column 'a' to both sku and name"),
        ('{"sku": "A", "name": "B", "price": "C"}', "unknown fields: 'price'"),
        ('{"SKU": "A", "name": "B"}', "unknown fields: 'SKU'"),
        ('{"sku": 5, "name": "B"}', "must be a column name (text), not int"),
        ('{"sku": ["A"], "name": "B"}', "not list"),
        ('{"sku": "' + "x" * 300 + '", "name": "B"}', "longer than 255"),
        ('{"sku": "A", "name": "' + "x" * 70_000 + '"}', "longer than 65,536 characters"),
    ],
)
def test_hostile_mappings_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(MappingInvalid, match=message.replace("(", "\\(").replace(")", "\\)")):
        parse_mapping(text)


def test_optional_fields_may_be_null_or_empty() -> None:
    assert parse_mapping('{"sku": "A", "name": "B", "description": null, "active": ""}') == {
        "sku": "A",
        "name": "B",
    }


def test_shopify_and_woocommerce_headers_get_the_specific_columns() -> None:
    assert suggest(SHOPIFY_HEADER) == {
        "sku": "Variant SKU",
        "name": "Title",
        "description": "Body (HTML)",
        "active": "Status",
    }
    assert suggest(WOO_HEADER) == {
        "sku": "SKU",
        "name": "Name",
        "description": "Description",
        "active": "Published",
    }
    # Handle is taken for sku only when there is nothing more specific.
    assert suggest(["Handle", "Title"]) == {"sku": "Handle", "name": "Title"}


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (["Artikelnummer", "Bezeichnung", "Beschreibung"], ("Artikelnummer", "Bezeichnung")),
        (["Référence", "Nom", "Prix"], ("Référence", "Nom")),
        (["Item code", "Item name", "Enabled"], ("Item code", "Item name")),
        (["Product Code", "Product name", "Visible"], ("Product Code", "Product name")),
        (["Article number", "Title"], ("Article number", "Title")),
        (["item-code", "ProductName"], ("item-code", "ProductName")),
        (["Prodcut code", "Titel"], ("Prodcut code", "Titel")),
    ],
)  # fmt: skip
def test_synonyms_in_several_languages_and_near_misses(
    header: list[str], expected: tuple[str, str]
) -> None:
    suggested = suggest(header)
    assert (suggested.get("sku"), suggested.get("name")) == expected


def test_unrelated_headers_get_no_suggestion_and_one_column_feeds_one_field() -> None:
    assert suggest(["Price", "Weight", "Colour"]) == {}
    assert suggest(["Name"]) == {"name": "Name"}
    assert len(set(suggest(SHOPIFY_HEADER + WOO_HEADER).values())) == 4


def test_the_documented_synonyms_are_the_issue_list_at_least() -> None:
    wanted = {
        "sku": ["sku", "variant sku", "item code", "product code", "article number"],
        "name": ["name", "title", "product name", "item name", "bezeichnung", "nom"],
        "description": ["description", "body (html)", "long description", "beschreibung"],
        "active": ["active", "status", "published", "enabled", "visible"],
    }
    for field, names in wanted.items():
        assert set(names) <= set(SYNONYMS[field])
    assert {"artikelnummer", "référence", "handle"} <= set(SYNONYMS["sku"])


def test_header_key_ignores_order_case_and_spacing() -> None:
    assert header_key(["SKU", " Title"]) == header_key(["title", "sku ", ""])
    assert header_key(["SKU", "Title"]) != header_key(["SKU", "Title", "Price"])
