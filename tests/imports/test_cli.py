"""`product-importer import FILE`, run as a subprocess against each database."""

from __future__ import annotations

import fcntl
import gzip
import os
import pty
import select as select_module
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from sqlalchemy import func, select

from product_importer.catalog.models import Product
from product_importer.db import Database
from product_importer.imports import saved_mappings
from tests.imports import workbooks
from tests.processes import cli_env, run_cli


def env_for(database: Database, home: Path) -> dict[str, str]:
    return cli_env(home, database.engine.url.render_as_string(hide_password=False))


def count(database: Database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Product)) or 0


def test_import_and_dry_run_from_the_command_line(database: Database, tmp_path: Path) -> None:
    file = tmp_path / "products.csv.gz"
    file.write_bytes(gzip.compress(b"sku,name\nA-1,Alpha\nB-1,Beta\n,No sku\n"))
    env = env_for(database, tmp_path)
    dry = run_cli("import", str(file), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was written" in dry.stdout
    assert "created 2, updated 0, unchanged 0, rejected 1" in dry.stdout
    assert count(database) == 0
    real = run_cli("import", str(file), env=env)
    assert real.returncode == 0, real.stderr
    assert "completed" in real.stdout
    assert "created 2, updated 0, unchanged 0, rejected 1" in real.stdout
    assert count(database) == 2


def test_bad_files_and_arguments_exit_non_zero_with_a_message(
    database: Database, tmp_path: Path
) -> None:
    env = env_for(database, tmp_path)
    missing = run_cli("import", str(tmp_path / "nope.csv"), env=env)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    directory = run_cli("import", str(tmp_path), env=env)
    assert directory.returncode == 2
    image = tmp_path / "photo.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    refused = run_cli("import", str(image), env=env)
    assert refused.returncode == 2
    assert "PNG image, not a CSV file" in refused.stderr
    header_only = tmp_path / "empty.csv"
    header_only.write_bytes(b"sku,name\n")
    failed = run_cli("import", str(header_only), env=env)
    assert failed.returncode == 1
    assert "error: The file has a header but no data rows." in failed.stdout
    for result in (missing, directory, refused, failed):
        assert "Traceback" not in result.stdout + result.stderr


def test_map_saved_mapping_sheet_and_encoding_options(database: Database, tmp_path: Path) -> None:
    env = env_for(database, tmp_path)
    book = tmp_path / "erp.xlsx"
    book.write_bytes(
        workbooks.xlsx(
            {
                "Notes": [["x"]],
                "Products": [["Item code", "Title", "Status"], [12345, "Chair", "draft"]],
            }
        )
    )
    refused = run_cli("import", str(book), "--sheet", "Products", env=env)
    assert refused.returncode == 2
    assert "no sku and no name column" in refused.stderr
    assert "Suggested: --map sku='Item code' --map name=Title --map active=Status" in refused.stderr
    assert "Sheets: Notes, Products" in refused.stderr
    mapped = run_cli(
        "import", str(book), "--sheet", "2", "--map", "sku=Item code", "--map", "name=Title",
        "--map", "active=Status", env=env,
    )  # fmt: skip
    assert mapped.returncode == 0, mapped.stderr
    assert "created 1" in mapped.stdout
    with database.session() as session:
        saved_mappings.create(
            session,
            "ERP",
            ["Item code", "Title", "Status"],
            {"sku": "Item code", "name": "Title"},
            "t",
        )
    by_name = run_cli("import", str(book), "--sheet", "Products", "--mapping", "erp", env=env)
    assert by_name.returncode == 0, by_name.stderr
    assert "updated 0, unchanged 1" in by_name.stdout
    cp1250 = tmp_path / "pl.csv"
    cp1250.write_bytes("sku,name\nP-1,Łódź\n".encode("cp1250"))
    assert run_cli("import", str(cp1250), "--encoding", "cp1250", env=env).returncode == 0
    with database.session() as session:
        assert session.scalar(select(Product.name).where(Product.sku == "P-1")) == "Łódź"
    for args, message in (
        (["--map", "sku"], "--map takes field=Column"),
        (["--map", "sku=Item code"], "must name a column for name"),
        (["--map", "price=x", "--map", "sku=a", "--map", "name=b"], "unknown fields"),
        (["--mapping", "nope"], "no saved mapping named 'nope' (saved: ERP)"),
        (["--encoding", "rot13"], "Unknown text encoding"),
        (["--encoding", "idna"], "The encoding 'idna' cannot be used for CSV text"),
        (["--sheet", "7"], "no sheet number 7"),
    ):
        result = run_cli("import", str(book), *args, env=env)
        assert result.returncode == 2, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert count(database) == 2


def test_log_lines_print_above_the_progress_bar(database: Database, tmp_path: Path) -> None:
    """On a terminal, tqdm draws a bar; the import's INFO lines must not land inside it."""
    file = tmp_path / "products.csv"
    file.write_bytes(b"sku,name\n" + b"".join(b"S-%d,Name %d\n" % (i, i) for i in range(20000)))
    env = {**env_for(database, tmp_path), "PRODUCT_IMPORTER_LOG_LEVEL": "INFO", "COLUMNS": "120"}
    leader, follower = pty.openpty()
    # A terminal of 30 rows and 120 columns (a new pty is 0 x 0: tqdm would draw nothing).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "product_importer", "import", str(file)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select_module.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break  # the child closed the terminal
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(leader)
    text = output.decode("utf-8", "replace")
    assert process.returncode == 0, text
    assert "%|" in text, text  # a bar was drawn
    log_lines = [
        part
        for line in text.split("\n")
        for part in line.split("\r")
        if "product_importer.imports.pipeline" in part
    ]
    assert log_lines, text
    for part in log_lines:
        assert part.lstrip().startswith("INFO product_importer.imports.pipeline"), repr(part)
