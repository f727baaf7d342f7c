"""The sample-data generator: deterministic, realistic, flat in memory, importable as written."""

from __future__ import annotations

import csv
import gzip
import io
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from product_importer import sampledata
from product_importer.catalog.models import Product
from product_importer.db import Database
from tests.imports.conftest import run_import
from tests.processes import cli_env, run_cli


def _text(options: sampledata.Options) -> str:
    buffer = io.StringIO()
    sampledata.write(buffer, options)
    return buffer.getvalue()


def _rows(options: sampledata.Options) -> list[list[str]]:
    reader = csv.reader(io.StringIO(_text(options)))
    assert next(reader) == ["name", "sku", "description"]
    return list(reader)


def test_the_same_seed_writes_the_same_file_and_another_seed_another() -> None:
    first = _text(sampledata.Options(rows=2_000, seed=7))
    assert first == _text(sampledata.Options(rows=2_000, seed=7))
    assert first != _text(sampledata.Options(rows=2_000, seed=8))
    # A longer file starts with the shorter one: rows do not depend on how many follow.
    assert _text(sampledata.Options(rows=3_000, seed=7)).startswith(first)


@pytest.mark.parametrize("dup_rate", [0.0, 0.03, 0.25])
def test_the_duplicate_share_repeats_earlier_skus_in_another_letter_case(dup_rate: float) -> None:
    rows = _rows(sampledata.Options(rows=20_000, seed=3, dup_rate=dup_rate))
    assert len(rows) == 20_000
    first_spelling: dict[str, str] = {}
    repeats = 0
    for _name, sku, _description in rows:
        key = sku.casefold()
        if key in first_spelling:
            repeats += 1
            assert sku != first_spelling[key], "a repeat is written in another letter case"
        else:
            first_spelling[key] = sku
    assert abs(repeats / len(rows) - dup_rate) < 0.01
    # New SKUs are never issued twice, whatever the letter case.
    assert len(first_spelling) == len(rows) - repeats


def test_rows_look_like_a_real_catalogue() -> None:
    text = _text(sampledata.Options(rows=5_000, seed=1))
    rows = list(csv.reader(io.StringIO(text)))[1:]
    descriptions = [description for _name, _sku, description in rows]
    assert any(not value.isascii() for value in descriptions)
    assert any("\n" in value for value in descriptions)  # quoted line breaks
    assert any('"' in value for value in descriptions)  # doubled quotes
    assert any("," in name for name, _sku, _description in rows)  # quoted commas
    assert '"' in text.splitlines()[1] or any(line.startswith('"') for line in text.splitlines())
    names = Counter(name for name, _sku, _description in rows)
    assert len(names) > 1_000  # varied names, not a handful repeated
    assert all(name and sku and description for name, sku, description in rows)


def test_memory_stays_flat_as_the_row_count_grows() -> None:
    def peak(rows: int) -> int:
        tracemalloc.start()
        try:
            for _row in sampledata.rows(sampledata.Options(rows=rows, seed=2, dup_rate=0.1)):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(2_000), peak(200_000)
    # 100 times the rows: the peak grows by no more than a few kilobytes of noise.
    assert large - small < 64 * 1024, (small, large)


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="rows"):
        sampledata.Options(rows=-1)
    for rate in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="dup_rate"):
            sampledata.Options(rows=1, dup_rate=rate)


def test_a_generated_file_imports_exactly_through_our_importer(
    client: TestClient, database: Database
) -> None:
    options = sampledata.Options(rows=3_000, seed=11, dup_rate=0.2)
    last_row: dict[str, tuple[str, str]] = {}
    for name, sku, description in sampledata.rows(options):
        last_row[sku.casefold()] = (name, description)

    job = run_import(client, _text(options).encode())

    assert job["status"] == "completed", job
    assert job["rows_processed"] == 3_000
    assert job["rows_rejected"] == 0
    assert job["rows_created"] == len(last_row)
    with database.session() as session:
        products = session.execute(select(Product.sku, Product.name, Product.description)).all()
    assert len(products) == len(last_row)
    for sku, name, description in products:
        # Line breaks, quotes, commas and non-ASCII text survive; the last row of a SKU wins.
        assert last_row[sku.casefold()] == (name, description)


def test_the_command_writes_csv_and_gzip(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    plain_path, zipped_path, forced_path = (
        str(tmp_path / name) for name in ("a.csv", "a.csv.gz", "b")
    )
    plain = run_cli("sample-data", "--rows", "500", "--seed", "4", "--out", plain_path, env=env)
    assert plain.returncode == 0, plain.stderr
    assert "Wrote 500 rows" in plain.stdout
    zipped = run_cli("sample-data", "--rows", "500", "--seed", "4", "--out", zipped_path, env=env)
    assert zipped.returncode == 0, zipped.stderr
    as_text = Path(plain_path).read_text(encoding="utf-8")
    assert gzip.decompress(Path(zipped_path).read_bytes()).decode() == as_text
    assert as_text == _text(sampledata.Options(rows=500, seed=4))
    forced = run_cli(
        "sample-data", "--rows", "5", "--format", "csv.gz", "--out", forced_path, env=env
    )
    assert forced.returncode == 0, forced.stderr
    assert gzip.decompress(Path(forced_path).read_bytes()).startswith(b"name,sku,description\n")
    to_stdout = run_cli("sample-data", "--rows", "3", "--out", "-", env=env)
    assert to_stdout.stdout.splitlines()[0] == "name,sku,description"
    assert len(to_stdout.stdout.splitlines()) >= 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "-5", "--out", "{dir}/x.csv"], "--rows"),
        (["--rows", "lots", "--out", "{dir}/x.csv"], "--rows"),
        (["--rows", "99999999999999999999999", "--out", "{dir}/x.csv"], "--rows"),
        (["--dup-rate", "1.5", "--out", "{dir}/x.csv"], "--dup-rate"),
        (["--dup-rate", "nan", "--out", "{dir}/x.csv"], "--dup-rate"),
        (["--seed", "one", "--out", "{dir}/x.csv"], "--seed"),
        (["--format", "xlsx", "--out", "{dir}/x.csv"], "--format"),
        (["--out", "{dir}/no/such/folder/x.csv"], "does not exist"),
        (["--out", "{dir}"], "is a folder"),
        (["--rows", "10"], "--out"),
    ],
)
def test_bad_arguments_get_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    filled = [arg.replace("{dir}", str(tmp_path)) for arg in args]
    result = run_cli("sample-data", *filled, env=cli_env(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "x.csv").exists()
