"""Mirror mode on SQLite and PostgreSQL: products a file does not list are deactivated or
deleted in the import's own transaction and change set, a rejected row still names its SKU,
the guard refuses a file that leaves out too much (changing nothing), a dry run says what would
happen, and one undo gives the catalogue back exactly."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from product_importer.catalog.models import Product
from product_importer.db import Database
from product_importer.history import record_tables
from product_importer.imports import cli as import_cli
from product_importer.imports import mirror, pipeline, service
from product_importer.imports.mirror import MirrorOptions, SeenKeys
from product_importer.imports.models import ImportJob
from product_importer.imports.storage import UploadStorage
from product_importer.settings import Settings
from tests.catalog.field_helpers import add_with_fields, define
from tests.catalog.helpers import events
from tests.changes.helpers import undo
from tests.imports.conftest import wait_for

ALL = {"max_missing_percent": "100"}  # small catalogues: the guard would refuse most files


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def listing(skus: list[str], header: list[str] | None = None) -> bytes:
    return csv_bytes(header or ["sku", "name"], [[sku, f"Product {sku}"] for sku in skus])


def post(client: TestClient, content: bytes, query: str = "", **data: str) -> Any:
    return client.post(
        f"/api/imports{query}", files={"file": ("feed.csv", content, "text/csv")}, data=data
    )


def run(client: TestClient, content: bytes, query: str = "", **data: str) -> dict[str, Any]:
    response = post(client, content, query, **data)
    assert response.status_code == 202, response.text
    return wait_for(client, response.json()["id"])


def seed(database: Database, rows: list[dict[str, Any]]) -> None:
    """Products as they would be before a night's feed (fields: stored values)."""
    add_with_fields(database, rows)


def rows(database: Database) -> dict[str, dict[str, Any]]:
    """Every product, whole, by SKU key."""
    with database.session() as session:
        found = session.execute(select(Product.__table__)).mappings().all()
    return {row["sku_key"]: {**row, "active": bool(row["active"])} for row in found}


def active(database: Database) -> dict[str, bool]:
    return {key: row["active"] for key, row in rows(database).items()}


def search(client: TestClient, term: str) -> list[str]:
    page = client.get("/api/products", params={"q": term, "page_size": 100}).json()
    return sorted(item["sku"] for item in page["items"])


def search_rows(database: Database) -> int:
    """Products with a search row, in the index or the fresh set."""
    key = "rowid" if database.dialect == "sqlite" else "product_id"
    with database.session() as session:
        return int(
            session.scalar(
                text(
                    f"SELECT count(*) FROM (SELECT {key} FROM product_search "
                    "UNION SELECT product_id FROM search_fresh) AS searched"
                )
            )
            or 0
        )


# --- deactivate and delete --------------------------------------------------------------------


def test_deactivate_switches_off_what_the_file_leaves_out_in_the_same_change(
    client: TestClient, database: Database
) -> None:
    seed(
        database,
        [
            {"sku": "A-1"},
            {"sku": "B-2"},
            {"sku": "C-3", "name": "Gone chair"},
            {"sku": "D-4", "active": False},  # off already: not touched, not counted
        ],
    )
    before = rows(database)
    job = run(client, listing(["A-1", "B-2", "NEW-5"]), missing="deactivate", **ALL)
    assert job["status"] == "completed", job
    assert (job["rows_created"], job["rows_missing"], job["refused"]) == (1, 1, False)
    assert (job["missing"], job["max_missing_percent"]) == ("deactivate", 100.0)
    after = rows(database)
    assert active(database) == {
        "a-1": True,
        "b-2": True,
        "c-3": False,
        "d-4": False,
        "new-5": True,
    }
    assert after["c-3"]["updated_at"] > before["c-3"]["updated_at"]
    assert after["d-4"] == before["d-4"]
    # Still findable: a deactivated product keeps its text in the search index.
    assert search(client, "gone chair") == ["C-3"]
    change = client.get(f"/api/changes/{job['change_id']}").json()
    assert (change["created"], change["updated"], change["deleted"]) == (1, 1, 0)
    history = client.get("/api/products/history", params={"sku": "c-3"}).json()["items"]
    assert history[0]["action"] == "updated"
    assert history[0]["changes"] == [{"field": "active", "old": True, "new": False}]
    [completed] = events(database, "import.completed")
    assert completed.payload["data"]["rows_missing"] == 1
    assert "feed_id" not in completed.payload["data"]


def test_delete_removes_what_the_file_leaves_out_with_its_search_rows_and_list_items(
    client: TestClient, database: Database
) -> None:
    define(database, {"tags": ("list", None), "price": ("decimal", None)})
    seed(
        database,
        [
            {"sku": "KEEP-1", "fields": {"tags": ["oak"]}},
            {"sku": "DROP-1", "name": "Walnut stool", "fields": {"tags": ["oak", "sale"]}},
            {"sku": "DROP-2", "active": False, "fields": {"price": "9.5"}},
        ],
    )
    job = run(client, listing(["KEEP-1", "NEW-1"]), missing="delete", **ALL)
    assert job["status"] == "completed", job
    assert (job["rows_created"], job["rows_missing"]) == (1, 2)
    assert sorted(rows(database)) == ["keep-1", "new-1"]
    assert search(client, "walnut") == []
    assert search_rows(database) == 2
    tagged = client.get("/api/products", params={"field.tags": "oak"}).json()["items"]
    assert [item["sku"] for item in tagged] == ["KEEP-1"]
    if database.dialect == "sqlite":
        with database.session() as session:
            items = session.execute(text("SELECT item FROM product_list_items")).scalars().all()
        assert items == ["oak"]
    change = client.get(f"/api/changes/{job['change_id']}").json()
    assert (change["created"], change["updated"], change["deleted"]) == (1, 0, 2)


def test_keep_is_the_default_and_leaves_everything_alone(
    client: TestClient, database: Database
) -> None:
    seed(database, [{"sku": "A-1"}, {"sku": "B-2"}])
    job = run(client, listing(["A-1"]))
    assert job["status"] == "completed", job
    assert (job["missing"], job["rows_missing"], job["refused"]) == ("keep", 0, False)
    assert active(database) == {"a-1": True, "b-2": True}
    with database.session() as session:
        stored = session.get(ImportJob, job["id"])
        assert stored is not None
        assert stored.options is None  # nothing beyond the defaults is kept
        assert mirror.step_for(stored.options) is None  # the merge runs no mirror step


# --- what counts as named by the file ----------------------------------------------------------


def test_a_rejected_row_still_names_its_sku(client: TestClient, database: Database) -> None:
    define(database, {"price": ("decimal", None)})
    seed(
        database,
        [
            {"sku": "TYPO-1", "fields": {"price": "10"}},
            {"sku": "NONAME-2"},
            {"sku": "ACTIVE-3"},
            {"sku": "=QUOTED-4"},
            {"sku": "GONE-5"},
        ],
    )
    content = csv_bytes(
        ["sku", "name", "price", "active"],
        [
            ["TYPO-1", "Chair", "1O.5", ""],  # a typo in the price rejects the row
            ["NONAME-2", "", "", ""],  # no name
            ["ACTIVE-3", "Lamp", "", "maybe"],  # not an active value
            ["'=QUOTED-4", "Desk", "x", ""],  # our export's escaped SKU, and a bad price
            ["", "No SKU", "", ""],  # names nothing
        ],
    )
    job = run(client, content, missing="delete", **ALL)
    assert job["status"] == "completed", job
    assert (job["rows_rejected"], job["rows_missing"]) == (5, 1)
    assert sorted(rows(database)) == ["=quoted-4", "active-3", "noname-2", "typo-1"]


def test_a_rejected_row_with_extra_fields_names_its_sku_and_a_dry_run_agrees(
    client: TestClient, database: Database
) -> None:
    seed(database, [{"sku": "WIDE-1"}, {"sku": "GONE-2"}])
    content = b"sku,name\nWIDE-1,Chair,extra value\nNEW-3,Lamp\n"
    dry = run(client, content, "?dry_run=true", missing="deactivate", **ALL)
    assert (dry["status"], dry["rows_rejected"], dry["rows_missing"]) == ("completed", 1, 1)
    job = run(client, content, missing="deactivate", **ALL)
    assert (job["rows_rejected"], job["rows_missing"]) == (1, 1)
    assert active(database) == {"wide-1": True, "gone-2": False, "new-3": True}


def test_skus_match_case_insensitively_as_the_merge_matches(
    client: TestClient, database: Database
) -> None:
    seed(database, [{"sku": "Abc-1"}, {"sku": "STRASSE-2"}, {"sku": "Äpfel-3"}, {"sku": "X-4"}])
    job = run(client, listing(["aBC-1", "straße-2", "äPFEL-3"]), missing="deactivate", **ALL)
    assert (job["status"], job["rows_updated"], job["rows_missing"]) == ("completed", 3, 1)
    assert active(database) == {"abc-1": True, "strasse-2": True, "äpfel-3": True, "x-4": False}


def test_seen_keys_read_a_sku_as_the_import_does_and_spill_to_disk() -> None:
    seen = SeenKeys()
    for cell in ["  Abc-1 ", "'=SUM-2", "", "x" * 256, "nul\x00sku", "\ud800", "Straße"]:
        seen.add(cell)
    many = [f"key-{i}-{'é' * (i % 7)}" for i in range(300_000)]  # several spill chunks
    for key in many:
        seen.add(key)
    assert list(seen) == ["abc-1", "=sum-2", "strasse", *many]
    seen.clear()
    assert (list(seen), seen.count) == ([], 0)


# --- the guard ---------------------------------------------------------------------------------


def ten_products(database: Database) -> list[str]:
    skus = [f"P-{i:02d}" for i in range(10)]
    seed(database, [{"sku": sku, "name": f"Old {sku}"} for sku in skus])
    return skus


def test_the_guard_refuses_a_half_empty_file_and_changes_nothing(
    client: TestClient, database: Database
) -> None:
    skus = ten_products(database)
    before = rows(database)
    content = listing([*skus[:5], "NEW-1"])  # five left out, names changed, one new
    job = run(client, content, missing="deactivate")
    assert (job["status"], job["refused"], job["rows_missing"]) == ("failed", True, 5), job
    assert job["error"] == (
        "Refused: the file leaves out 5 of 10 products (50.0 %), more than the limit of 10 %. "
        "Nothing was changed. Run it again with confirm_missing to deactivate them."
    )
    assert job["change_id"] is None
    assert rows(database) == before
    assert client.get("/api/changes").json()["total"] == 0
    [failed] = events(database, "import.failed")
    assert (failed.payload["data"]["rows_missing"], failed.payload["data"]["status"]) == (
        5,
        "failed",
    )

    # The same file, pushed through the guard once by a retry.
    response = client.post(f"/api/imports/{job['id']}/retry", params={"confirm_missing": True})
    assert response.status_code == 202, response.text
    assert (response.json()["refused"], response.json()["rows_missing"]) == (False, 0)
    retried = wait_for(client, job["id"])
    assert (retried["status"], retried["rows_missing"], retried["refused"]) == (
        "completed",
        5,
        False,
    )
    assert retried["confirm_missing"] is True
    assert sum(active(database).values()) == 6


def test_the_guard_counts_what_would_change_and_shows_a_share_over_its_limit(
    client: TestClient, database: Database
) -> None:
    skus = ten_products(database)
    job = run(
        client, listing(skus[:8]), missing="delete", max_missing_percent="19.99", confirm_missing=""
    )
    assert job["refused"] is True
    assert "leaves out 2 of 10 products (20.0 %), more than the limit of 19.99 %" in job["error"]
    assert "to delete them" in job["error"]
    at_limit = run(client, listing(skus[:8]), missing="delete", max_missing_percent="20")
    assert (at_limit["status"], at_limit["rows_missing"]) == ("completed", 2)
    assert sorted(rows(database)) == [sku.lower() for sku in skus[:8]]


def test_confirm_missing_pushes_one_run_through_the_guard(
    client: TestClient, database: Database
) -> None:
    skus = ten_products(database)
    job = run(client, listing(skus[:5]), missing="delete", confirm_missing="true")
    assert (job["status"], job["refused"], job["rows_missing"]) == ("completed", False, 5)
    assert sorted(rows(database)) == [sku.lower() for sku in skus[:5]]


def test_an_empty_catalogue_is_never_refused(client: TestClient, database: Database) -> None:
    job = run(client, listing(["A-1", "B-2"]), missing="delete", max_missing_percent="0")
    assert (job["status"], job["refused"], job["rows_missing"], job["rows_created"]) == (
        "completed",
        False,
        0,
        2,
    )


def test_a_dry_run_counts_what_would_go_and_says_the_guard_would_refuse(
    client: TestClient, database: Database
) -> None:
    skus = ten_products(database)
    before = rows(database)
    dry = run(client, listing(skus[:5]), "?dry_run=true", missing="deactivate")
    assert (dry["status"], dry["rows_missing"], dry["refused"], dry["dry_run"]) == (
        "completed",
        5,
        True,
        True,
    )
    assert dry["warnings"][-1] == (
        "A real import would be refused: the file leaves out 5 of 10 products (50.0 %), more "
        "than the limit of 10 %. Run it with confirm_missing to deactivate them."
    )
    within = run(client, listing(skus[:5]), "?dry_run=true", missing="delete", **ALL)
    assert (within["rows_missing"], within["refused"], within["warnings"]) == (5, False, [])
    assert rows(database) == before
    assert events(database) == []  # dry runs record no webhook event


# --- undo ------------------------------------------------------------------------------------


def without(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in names}


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
@pytest.mark.parametrize("missing", ["deactivate", "delete"])
def test_one_undo_gives_the_catalogue_back_exactly(
    client: TestClient,
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
    large: bool,
) -> None:
    if large:  # PostgreSQL: records in a table of their own
        monkeypatch.setattr(record_tables, "OWN_TABLE_MIN_ROWS", 1)
    define(database, {"tags": ("list", None), "price": ("decimal", None)})
    seed(
        database,
        [
            {"sku": "KEEP-1", "name": "Same", "fields": {"price": "5"}},
            {"sku": "EDIT-2", "name": "Old name", "fields": {"price": "7"}},
            {"sku": "GONE-3", "name": "Teak bench", "fields": {"price": "19.9", "tags": ["t"]}},
            {"sku": "GONE-4", "description": "kept text", "fields": {"tags": ["a", "b"]}},
            {"sku": "OFF-5", "active": False, "fields": {"price": "1"}},
        ],
    )
    before = rows(database)
    content = csv_bytes(
        ["sku", "name", "price"],
        [["KEEP-1", "Same", "5"], ["EDIT-2", "New name", "8"], ["NEW-6", "Brand new", "3"]],
    )
    job = run(client, content, missing=missing, **ALL)
    assert job["status"] == "completed", job
    assert job["rows_missing"] == (2 if missing == "deactivate" else 3)
    if database.dialect == "postgresql":
        with database.session() as session:
            own = session.scalar(text(f"SELECT to_regclass('change_records_{job['change_id']}')"))
        assert (own is not None) == large
    assert search(client, "teak") == ([] if missing == "delete" else ["GONE-3"])

    result = undo(client, job["change_id"])
    assert result["status"] == "completed", result
    assert result["kept"] == 0
    after = rows(database)
    assert sorted(after) == sorted(before)
    for key, row in before.items():
        # An undo writes its own time as updated_at (the product's version); a re-created
        # product gets a new id and created_at (README "Undo").
        recreated = missing == "delete" and key in ("gone-3", "gone-4", "off-5")
        ignored = ("updated_at", "id", "created_at") if recreated else ("updated_at",)
        assert without(after[key], *ignored) == without(row, *ignored), key
    assert search(client, "teak") == ["GONE-3"]
    assert search_rows(database) == len(before)
    tagged = client.get("/api/products", params={"field.tags": "b"}).json()["items"]
    assert [item["sku"] for item in tagged] == ["GONE-4"]
    [reverted] = events(database, "import.reverted")
    expected_restored = 1 + job["rows_missing"]  # EDIT-2 and what the mirror step changed
    assert (reverted.payload["data"]["deleted"], reverted.payload["data"]["restored"]) == (
        1,
        expected_restored,
    )


# --- the API and the command line -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"missing": "remove"}, 'missing must be "keep", "deactivate" or "delete", not \'remove\''),
        ({"max_missing_percent": "ten"}, "max_missing_percent must be a number from 0 to 100"),
        ({"max_missing_percent": "150"}, "max_missing_percent must be from 0 to 100, not 150."),
        ({"max_missing_percent": "-1"}, "max_missing_percent must be from 0 to 100, not -1."),
        ({"max_missing_percent": "nan"}, "max_missing_percent must be from 0 to 100, not nan."),
        ({"confirm_missing": "perhaps"}, "confirm_missing must be true or false, not 'perhaps'."),
    ],
)
def test_the_upload_refuses_bad_mirror_options_with_a_422(
    client: TestClient, fields: dict[str, str], message: str
) -> None:
    for response in (
        post(client, listing(["A-1"]), **fields),  # form fields
        post(client, listing(["A-1"]), "?" + "&".join(f"{k}={v}" for k, v in fields.items())),
    ):
        assert response.status_code == 422, response.text
        assert message in response.json()["detail"]
    assert client.get("/api/imports").json()["total"] == 0


def test_options_given_both_ways_must_agree_and_a_percent_sign_is_fine(
    client: TestClient,
) -> None:
    clash = post(client, listing(["A-1"]), "?missing=delete", missing="deactivate")
    assert clash.status_code == 422
    assert "missing is given both as a query parameter and as a form field" in clash.text
    response = post(client, listing(["A-1"]), "?max_missing_percent=2.5%25", missing="Delete")
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["missing"], job["max_missing_percent"], job["confirm_missing"]) == (
        "delete",
        2.5,
        False,
    )
    wait_for(client, job["id"])


def _queue(database: Database, storage: UploadStorage, content: bytes, **kwargs: Any) -> int:
    key = storage.new_key(".upload")
    with storage.open_write(key) as handle:
        handle.write(content)
    with database.session() as session:
        return service.start_import(
            session,
            filename="feed.csv",
            storage_key=key,
            total_bytes=len(content),
            dry_run=False,
            created_by="feed: nightly",
            **kwargs,
        ).id


def test_event_data_carries_rows_missing_and_the_feed(
    database: Database, settings: Settings
) -> None:
    seed(database, [{"sku": "A-1"}, {"sku": "B-2"}])
    storage = UploadStorage(settings.home / "uploads")
    options = MirrorOptions(missing="deactivate", max_missing_percent=50.0)
    job_id = _queue(database, storage, listing(["A-1"]), mirror=options, feed_id=7)
    with database.session() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        assert job.options == {"missing": "deactivate", "max_missing_percent": 50.0, "feed_id": 7}
    pipeline.run_import(database, storage, job_id)
    [completed] = events(database, "import.completed")
    data = completed.payload["data"]
    assert (data["status"], data["rows_missing"], data["feed_id"]) == ("completed", 1, 7)
    with database.session() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        assert pipeline.event_data(job) == data


def test_the_command_line_parses_the_options_and_says_what_happened(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    seed(database, [{"sku": "A-1"}, {"sku": "B-2"}])
    with pytest.raises(import_cli.OptionError, match="missing must be"):
        import_cli.mirror_options("purge", None, False)
    with pytest.raises(import_cli.OptionError, match="from 0 to 100, not 101"):
        import_cli.mirror_options("delete", 101.0, False)
    chosen = import_cli.mirror_options("deactivate", 50.0, False)
    path = tmp_path / "feed.csv"
    path.write_bytes(listing(["A-1"]))
    job = import_cli.run(settings, database, path, False, mirror_mode=chosen)
    assert (job.status, job.rows_missing) == ("completed", 1)
    assert "products not in the file: 1 deactivated" in import_cli.summary(job)
    refused = import_cli.run(
        settings, database, path, True, mirror_mode=import_cli.mirror_options("delete", 0, False)
    )
    assert (refused.status, refused.refused, refused.rows_missing) == ("completed", True, 1)
    summary = import_cli.summary(refused)
    assert "products not in the file: 1 would be deleted" in summary
    assert "warning: A real import would be refused" in summary


def test_options_round_trip_through_a_job() -> None:
    assert MirrorOptions().extra() == {}
    chosen = MirrorOptions("delete", 2.5, True)
    assert MirrorOptions.stored({**chosen.extra(), "group_by": "Handle"}) == chosen
    with pytest.raises(ValueError, match="missing must be one of"):
        MirrorOptions("purge")
    with pytest.raises(ValueError, match="from 0 to 100"):
        MirrorOptions("delete", 120)
