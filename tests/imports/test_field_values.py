"""The import's quick reading of custom field values gives exactly what `field_types` gives:
the same stored value as JSON, or the same refusal."""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from product_importer.catalog import field_types
from product_importer.catalog.field_types import FieldValueError
from product_importer.db import compact_json
from product_importer.imports.columns import Columns, FieldColumn, FieldSpec
from product_importer.imports.validation import URL_PATTERN, StagedRow, normalise, value_json

NUMBERISH = st.text(alphabet="0123456789.,,,-+ e\u00a0٣", max_size=30)
TEXTISH = st.text(
    alphabet=st.sampled_from([*string.printable, "é", "\u00a0", "\u200b", "\x01", "\x7f", "ß"]),
    max_size=60,
)
LISTISH = st.lists(
    st.text(alphabet=st.sampled_from([*"ab ,", "é", "\u00a0", "\x02"]), max_size=8), max_size=120
).map(",".join)


def outcome(read: Callable[[], Any]) -> tuple[str, str]:
    try:
        return "value", read()
    except FieldValueError as exc:
        return "refused", str(exc)


def same(kind: str, value: str, separator: str = ".") -> None:
    expected = outcome(lambda: compact_json(field_types.from_text(kind, value, None, separator)))
    assert outcome(lambda: value_json(kind, None, separator)(value)) == expected


@settings(max_examples=400, deadline=None)
@given(value=NUMBERISH.filter(lambda v: v.strip() != ""), separator=st.sampled_from(".,"))
@example(value="007.500", separator=".")
@example(value="0.00", separator=".")
@example(value="1" * 16, separator=".")
@example(value="1,234,567.50", separator=".")
@example(value="1.234.567,50", separator=",")
@example(value="1,2,3.5", separator=".")
@example(value="1.2,3", separator=".")
@example(value="1." + "0" * 11, separator=".")
@example(value="٣", separator=".")
@example(value="99999999999999999999", separator=",")
def test_numbers_read_as_field_types_reads_them(value: str, separator: str) -> None:
    value = value.strip()
    same("decimal", value, separator)
    same("integer", value, separator)


@settings(max_examples=400, deadline=None)
@given(value=TEXTISH.filter(lambda v: v.strip() != ""))
@example(value="x" * 2001)
@example(value="a\u00a0")
def test_text_reads_as_field_types_reads_it(value: str) -> None:
    same("text", value.strip())


@settings(max_examples=300, deadline=None)
@given(value=LISTISH.filter(lambda v: v.strip() != ""))
@example(value=",".join(["a" * 200] * 9) + ",b")
@example(value=",".join(["ab"] * 101))
@example(value=",".join(f"{i:03d}" for i in range(101)))
def test_lists_read_as_field_types_reads_them(value: str) -> None:
    same("list", value.strip())


URLISH = st.builds(
    "{}{}".format,
    st.sampled_from(["http://", "https://", "HTTPS://", "ftp://", "https:/", ""]),
    st.lists(
        st.sampled_from(["a", ".example", ":80", ":123456", "/", "?q=1", "#x", "@", " ", "é",
                         "\u00a0", "\x05", "\u2028", "\ud800", "%20", "\t"]),
        max_size=8,
    ).map("".join),
)  # fmt: skip
DATEISH = st.builds(
    "{}-{}-{}{}".format,
    st.sampled_from(["2026", "1999", "0000", "20a6", "٢٠٢٦", "9999"]),
    st.sampled_from(["01", "02", "12", "13", "00", "1"]),
    st.sampled_from(["01", "28", "29", "30", "31", "32", "1"]),
    st.sampled_from(["", "T00:00", " 00:00:00", "x", " "]),
)


@settings(max_examples=300, deadline=None)
@given(value=URLISH.filter(lambda v: v.strip() != ""))
@example(value="https://cdn.example.com/products/a-1.jpg")
@example(value="https://a.example/" + "x" * 2048)
@example(value="https://a\x05b.example/c")
@example(value="https://a.example/\ud800")
def test_addresses_read_as_field_types_reads_them(value: str) -> None:
    same("url", value.strip())


@settings(max_examples=300, deadline=None)
@given(value=DATEISH)
@example(value="2024-02-29")
@example(value="2026-02-29")
def test_dates_read_as_field_types_reads_them(value: str) -> None:
    same("date", value.strip())


def test_the_address_pattern_is_field_types_own() -> None:
    own = getattr(field_types, "_URL")  # noqa: B009
    assert (URL_PATTERN.pattern, URL_PATTERN.flags) == (own.pattern, own.flags)


def stage(rows: list[list[str]], specs: list[FieldSpec], **options: str) -> list[StagedRow]:
    columns = Columns(
        sku=0,
        name=1,
        description=None,
        active=None,
        width=2 + len(specs),
        fields=tuple(FieldColumn(2 + i, spec.key, spec) for i, spec in enumerate(specs)),
    )
    return list(normalise(enumerate(rows, start=2), columns, lambda *_: None, **options))


def test_a_row_stages_its_fields_as_a_compact_merge_patch() -> None:
    specs = [FieldSpec("price", "Price", "decimal"), FieldSpec("tags", "Tags", "list"),
             FieldSpec("note", "Note", "text")]  # fmt: skip
    rows = [
        ["A", "a", "19.90", "x, y", 'say "hi" – ok'],
        ["B", "b", "", "", ""],
        ["C", "c", "'-5", "", "'=1+1"],  # our export's escapes
        ["D", "d", "19.90", "x, y", 'say "hi" – ok'],  # remembered values give the same JSON
    ]
    fields = [row[6] for row in stage(rows, specs)]
    assert fields == [
        '{"price":"19.9","tags":["x","y"],"note":"say \\"hi\\" – ok"}',
        None,
        '{"price":"-5","note":"=1+1"}',
        '{"price":"19.9","tags":["x","y"],"note":"say \\"hi\\" – ok"}',
    ]
    cleared = [row[6] for row in stage(rows[1:2], specs, empty_cells="clear")]
    assert cleared == ['{"price":null,"tags":null,"note":null}']
