"""Row rules, one reason each."""

from __future__ import annotations

import io

import pytest

from product_importer.imports.reading import Columns, CsvSource, detect_format
from product_importer.imports.validation import StagedRow, normalise


def run(data: str) -> tuple[list[StagedRow], list[tuple[int, str]]]:
    raw = io.BytesIO(data.encode())
    source = CsvSource(raw, detect_format(raw))
    columns: Columns = source.read_header()
    rejects: list[tuple[int, str]] = []
    staged = list(normalise(source.rows(), columns, lambda ln, why, _f: rejects.append((ln, why))))
    return staged, rejects


def test_valid_rows_are_trimmed_and_keyed_case_insensitively() -> None:
    staged, rejects = run("sku,name,description\n  ÄPFEL-1 , Apples ,  Red  \n")
    assert rejects == []
    assert staged == [(2, "äpfel-1", "ÄPFEL-1", "Apples", "Red", None, None)]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (",Name,desc", "SKU is empty."),
        ("   ,Name,desc", "SKU is empty."),
        ("S-1,,desc", "Name is empty."),
        ("S-1,  ,desc", "Name is empty."),
        ("S" * 256 + ",Name,desc", "SKU is 256 characters; the limit is 255."),
        ("S-1," + "N" * 501 + ",desc", "Name is 501 characters; the limit is 500."),
        ("S-1,Name," + "d" * 10_001, "Description is 10001 characters; the limit is 10000."),
        ("S-1,Na\x00me,desc", "NUL character"),
        ("S-1,Name,desc,surplus", "Row has 4 fields but the header has 3"),
    ],
)
def test_invalid_rows_are_rejected_with_their_line_and_reason(row: str, reason: str) -> None:
    staged, rejects = run(f"sku,name,description\nOK-1,Fine,ok\n{row}\nOK-2,Fine,ok\n")
    assert [s[2] for s in staged] == ["OK-1", "OK-2"]
    assert len(rejects) == 1
    assert rejects[0][0] == 3
    assert reason in rejects[0][1]


def test_limits_are_inclusive() -> None:
    staged, rejects = run(f"sku,name\n{'S' * 255},{'N' * 500}\n")
    assert rejects == []
    assert len(staged) == 1


def test_trailing_empty_fields_and_short_rows_lose_nothing() -> None:
    staged, rejects = run("sku,name,description\nA-1,Alpha,,,\nB-1,Beta\n")
    assert rejects == []
    assert [(s[2], s[4]) for s in staged] == [("A-1", ""), ("B-1", "")]


def test_rows_of_empty_cells_are_skipped_not_rejected() -> None:
    staged, rejects = run("sku,name,description\nA-1,Alpha,a\n,,\n , , \n")
    assert rejects == []
    assert len(staged) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        (" Yes ", True),
        ("no", False),
        ("", None),
        ("ACTIVE", True),
        ("Draft", False),
        ("archived", False),
        ("Published", True),
        ("unpublished", False),
        ("enabled", True),
        ("Disabled", False),
        ("visible", True),
        ("HIDDEN", False),
        ("Y", True),
        ("n", False),
    ],
)
def test_active_values(value: str, expected: bool | None) -> None:
    staged, rejects = run(f"sku,name,active\nA-1,Alpha,{value}\n")
    assert rejects == []
    assert staged[0][5] is expected


@pytest.mark.parametrize("value", ["maybe", "-1", "on", "pending", "activ", "2"])
def test_unknown_active_value_is_rejected_with_its_line_and_value(value: str) -> None:
    _staged, rejects = run(f"sku,name,active\nA-1,Alpha,true\nB-1,Beta,{value}\n")
    assert len(rejects) == 1
    line, reason = rejects[0]
    assert line == 3
    assert reason.startswith("Active must be true/false, yes/no, y/n, 1/0, active/draft/archived")
    assert reason.endswith(f"not {value!r}.")


def test_cells_escaped_by_our_export_are_restored() -> None:
    staged, rejects = run("sku,name,description\n'=1+1,'@home,'-10% off\n'plain,Name,''=x\n")
    assert rejects == []
    assert [(s[2], s[3], s[4]) for s in staged] == [
        ("=1+1", "@home", "-10% off"),
        ("'plain", "Name", "'=x"),
    ]
