"""The backups API on both databases: admins start, list and download backups (audited); other
roles get 403; GET /api/system tells everyone about the last one."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from product_importer.auth.roles import Role
from product_importer.backups import service
from product_importer.db import Database, utcnow
from product_importer.settings import Settings
from tests.factories import make_product, sign_in


def test_an_admin_backs_up_lists_and_downloads(
    client: TestClient, database: Database, settings: Settings
) -> None:
    for number in range(25):
        make_product(database, f"SKU-{number}")

    started = client.post("/api/backups")

    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "running" and body["trigger"] == "manual"
    assert body["file_name"] == f"product-importer-backup-{body['id']}.zip"
    # The test client returns once the background task has run.
    [listed] = client.get("/api/backups").json()
    assert listed["id"] == body["id"] and listed["status"] == "completed", listed
    assert listed["product_count"] == 25 and listed["size"] > 0
    assert listed["database"] == database.dialect and listed["error"] is None

    download = client.get(f"/api/backups/{body['id']}/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert body["file_name"] in download.headers["content-disposition"]
    assert download.headers["cache-control"] == "no-store"
    assert len(download.content) == listed["size"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as zipped:
        assert json.loads(zipped.read("manifest.json"))["product_count"] == 25

    audit = client.get("/api/audit", params={"action": "backup"}).json()["items"]
    assert sorted(entry["action"] for entry in audit) == ["backup.create", "backup.download"]
    assert {entry["target"] for entry in audit} == {f"backup:{body['id']}"}
    assert {entry["actor"] for entry in audit} == {"alice"}


def test_one_backup_at_a_time_and_unknown_ids(client: TestClient, settings: Settings) -> None:
    holding = service.reserve(settings, "cli")
    try:
        busy = client.post("/api/backups")
        assert busy.status_code == 409 and "being written" in busy.json()["detail"]
        [running] = client.get("/api/backups").json()
        assert running["status"] == "running" and running["id"] == holding.id
        assert client.get(f"/api/backups/{holding.id}/download").status_code == 404
    finally:
        holding.release()
    [interrupted] = client.get("/api/backups").json()
    assert interrupted["status"] == "failed" and "Interrupted" in interrupted["error"]
    assert client.get("/api/backups/20250101-030000-000000/download").status_code == 404
    for hostile in ("..%2F..%2Fproducts.db", "20250101-030000-00000x", "x" * 30):
        assert client.get(f"/api/backups/{hostile}/download").status_code in (404, 422)


@pytest.mark.parametrize("role", [Role.viewer, Role.editor])
def test_other_roles_may_not_touch_backups(
    anon_client: TestClient, database: Database, settings: Settings, role: Role
) -> None:
    record = service.back_up(settings, database, "cli")
    sign_in(anon_client, database, f"{role.value}-user", role)
    for method, path in (
        ("POST", "/api/backups"),
        ("GET", "/api/backups"),
        ("GET", f"/api/backups/{record.id}/download"),
    ):
        response = anon_client.request(method, path)
        assert response.status_code == 403, (method, path)
        assert "needs the admin role" in response.json()["detail"]
    # Everyone reads when the last backup was made, on the System page.
    last = anon_client.get("/api/system").json()["backups"]["last_completed"]
    assert last["id"] == record.id and last["product_count"] == 0


def test_the_system_page_says_when_backups_fail_or_grow_old(
    client: TestClient, database: Database, settings: Settings
) -> None:
    block = client.get("/api/system").json()["backups"]
    assert block["scheduled"] is True and block["time"] == "03:00" and block["keep"] == 7
    assert block["last"] is None and block["warning"] is None and block["next_at"]

    record = service.back_up(settings, database, "manual")
    block = client.get("/api/system").json()["backups"]
    assert block["last"]["id"] == block["last_completed"]["id"] == record.id
    assert block["warning"] is None

    later = utcnow() + timedelta(days=2, hours=1)
    assert "daily backups have not run" in (service.status(settings, later).warning or "")

    holding = service.reserve(settings, "scheduled")
    service.folder(settings).fail(holding, "pg_dump was not found on PATH.", utcnow())
    holding.release()
    block = client.get("/api/system").json()["backups"]
    assert block["last"]["status"] == "failed"
    assert block["last_completed"]["id"] == record.id
    assert "failed: pg_dump was not found on PATH." in block["warning"]


def test_the_system_page_shows_backups_and_admins_can_start_one(client: TestClient) -> None:
    page = client.get("/system")
    assert 'id="sys-backup-now"' in page.text and "Backups" in page.text
