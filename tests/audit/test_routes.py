"""The audit log: each listed action is recorded once with the right actor and address, no
secret ever reaches it, GET /api/audit filters and pages, and old entries are pruned."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from product_importer.audit import tasks as audit_tasks
from product_importer.audit.models import AuditEvent
from product_importer.auth.roles import Role
from product_importer.db import Database
from product_importer.settings import Settings
from product_importer.tasks.registry import TaskContext
from tests.factories import DEFAULT_PASSWORD, login_csrf, make_token
from tests.imports.conftest import run_import


def _all_entries(database: Database) -> list[AuditEvent]:
    with database.session() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_each_action_is_recorded_with_its_actor_and_no_secret(
    client: TestClient, database: Database
) -> None:
    secrets: list[str] = [DEFAULT_PASSWORD]
    # Failed sign-ins: a real user name is kept, anything else is not (it may be a password).
    other = TestClient(client.app)
    for name in ("alice", "correct horse battery staple"):
        other.post(
            "/login",
            data={"username": name, "password": "wrong pw", "csrf_token": login_csrf(other)},
        )
    secrets += ["wrong pw", "correct horse battery staple"]

    product = client.post("/api/products", json={"sku": "A-1", "name": "Lamp"}).json()
    client.patch(f"/api/products/{product['id']}", json={"name": "Desk lamp"})
    client.delete(f"/api/products/{product['id']}")
    upload = client.post("/api/imports", files={"file": ("p.csv", b"sku,name\nB-1,Chair\n")})
    assert upload.status_code == 202
    hook = client.post(
        "/api/webhooks",
        json={
            "url": "https://hooks.example.com/x?key=receiver-credential",
            "events": ["product.created"],
        },
    ).json()
    secrets += [hook["secret"], "receiver-credential"]
    client.patch(f"/api/webhooks/{hook['id']}", json={"enabled": False})
    secrets.append(client.post(f"/api/webhooks/{hook['id']}/rotate-secret").json()["secret"])
    client.delete(f"/api/webhooks/{hook['id']}")
    user = client.post("/api/users", json={"username": "bob", "role": "viewer"}).json()
    secrets.append(user["password"])
    client.patch(f"/api/users/{user['id']}", json={"role": "editor"})
    secrets.append(client.post(f"/api/users/{user['id']}/reset-password").json()["password"])
    token = client.post("/api/tokens", json={"name": "nightly", "role": "editor"}).json()
    secrets.append(token["token"])
    # The token acts under its own name.
    bearer = TestClient(client.app, headers={"Authorization": f"Bearer {token['token']}"})
    assert bearer.delete("/api/products?confirm=true").status_code == 403  # an editor token
    admin_token = make_token(database, "ops", Role.admin)
    secrets.append(admin_token)
    bearer.headers["Authorization"] = f"Bearer {admin_token}"
    assert bearer.delete("/api/products?confirm=true").status_code == 202
    client.delete(f"/api/tokens/{token['id']}")
    new_password = "a brand new password"
    secrets.append(new_password)
    client.post(
        "/api/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": new_password},
    )
    client.post("/logout", data={"csrf_token": client.headers["X-CSRF-Token"]})

    entries = _all_entries(database)
    seen = [(e.actor, e.action) for e in entries]
    expected = [
        ("alice", "auth.sign_in"),
        ("alice", "auth.sign_in_failed"),
        ("unknown user", "auth.sign_in_failed"),
        ("alice", "product.create"),
        ("alice", "product.update"),
        ("alice", "product.delete"),
        ("alice", "import.start"),
        ("alice", "webhook.create"),
        ("alice", "webhook.update"),
        ("alice", "webhook.rotate_secret"),
        ("alice", "webhook.delete"),
        ("alice", "user.create"),
        ("alice", "user.update"),
        ("alice", "user.reset_password"),
        ("alice", "token.create"),
        ("ops", "products.delete_all"),
        ("alice", "token.revoke"),
        ("alice", "user.change_password"),
        ("alice", "auth.sign_out"),
    ]
    assert seen == expected
    assert all(e.ip == "testclient" for e in entries)
    kinds = {e.action: e.actor_kind for e in entries}
    assert kinds["products.delete_all"] == "token" and kinds["auth.sign_in_failed"] == "anonymous"
    by_action = {e.action: e for e in entries}
    assert by_action["user.update"].details == {"role": {"from": "viewer", "to": "editor"}}
    assert by_action["product.update"].details == {"fields": ["name"]}
    assert by_action["webhook.create"].target.endswith("hooks.example.com")  # type: ignore[union-attr]

    dump = json.dumps(
        [[e.actor, e.action, e.target, e.ip, e.details] for e in entries], ensure_ascii=False
    )
    for secret in secrets:
        assert secret not in dump


def test_the_api_filters_and_pages(client: TestClient, database: Database) -> None:
    for sku in ("A", "B", "C"):
        client.post("/api/products", json={"sku": sku, "name": sku})
    client.post("/api/users", json={"username": "bob"})
    everything = client.get("/api/audit").json()
    assert everything["total"] == 5  # sign-in, three creates, one user
    assert everything["items"][0]["action"] == "user.create"  # newest first
    products = client.get("/api/audit", params={"action": "product", "page_size": 2}).json()
    assert products["total"] == 3 and len(products["items"]) == 2
    second = client.get(
        "/api/audit", params={"action": "product", "page_size": 2, "page": 2}
    ).json()
    assert len(second["items"]) == 1
    assert client.get("/api/audit", params={"action": "user.create"}).json()["total"] == 1
    assert client.get("/api/audit", params={"actor": "nobody"}).json()["total"] == 0
    assert client.get("/api/audit", params={"actor": "alice"}).json()["total"] == 5
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert client.get("/api/audit", params={"since": later}).json()["total"] == 0
    assert client.get("/api/audit", params={"until": later}).json()["total"] == 5


def test_bad_filters_get_a_precise_4xx(client: TestClient, database: Database) -> None:
    for params in (
        {"since": "yesterday"},
        {"since": "2030-01-01T00:00:00"},  # no time zone
        {"action": "DROP TABLE"},
        {"actor": "a\x00b"},
        {"page": "0"},
        {"page_size": "1000"},
    ):
        response = client.get("/api/audit", params=params)
        assert response.status_code == 422, (params, response.text)
    backwards = client.get(
        "/api/audit",
        params={"since": "2030-01-02T00:00:00Z", "until": "2030-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 400 and "before" in backwards.json()["detail"]


def test_entries_older_than_the_retention_are_pruned(
    database: Database, settings: Settings
) -> None:
    with database.session() as session:
        for days in (181, 179):
            session.add(
                AuditEvent(
                    occurred_at=datetime.now(UTC) - timedelta(days=days),
                    actor="alice",
                    actor_kind="user",
                    action="product.create",
                    details={},
                )
            )
    audit_tasks.prune(TaskContext(database=database, settings=settings))
    left = _all_entries(database)
    assert len(left) == 1 and (datetime.now(UTC) - left[0].occurred_at).days == 179
    shorter = settings.model_copy(update={"audit_retention_days": 30})
    audit_tasks.prune(TaskContext(database=database, settings=shorter))
    assert _all_entries(database) == []


def test_undo_bulk_actions_and_saved_mappings_are_recorded(
    client: TestClient, database: Database
) -> None:
    job = run_import(client, b"sku,name\nU-1,Lamp\nU-2,Chair\n")
    assert job["status"] == "completed", job
    dry = client.post(f"/api/imports/{job['id']}/undo?dry_run=true")
    assert dry.status_code == 200, dry.text
    undo = client.post(f"/api/imports/{job['id']}/undo")
    assert undo.status_code == 202, undo.text
    deadline = time.monotonic() + 30
    while client.get(f"/api/changes/{undo.json()['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the undo did not complete"
        time.sleep(0.05)
    client.post("/api/products", json={"sku": "U-3", "name": "Desk"})
    ids = [p["id"] for p in client.get("/api/products").json()["items"]]
    bulk = client.post("/api/products/bulk", json={"action": "deactivate", "ids": ids})
    assert bulk.status_code in (200, 202), bulk.text
    saved = client.post(
        "/api/import-mappings",
        json={"name": "shop", "mapping": {"sku": "Handle", "name": "Title"}},
    )
    assert saved.status_code == 201, saved.text
    assert client.delete(f"/api/import-mappings/{saved.json()['id']}").status_code == 204

    actions = [e.action for e in _all_entries(database) if e.actor == "alice"]
    # A dry run changes nothing and is not recorded.
    assert actions[-5:] == [
        "import.undo",
        "product.create",
        "product.bulk",
        "import_mapping.save",
        "import_mapping.delete",
    ]
    bulk_entry = next(e for e in _all_entries(database) if e.action == "product.bulk")
    assert bulk_entry.details == {"action": "deactivate", "matched": 1}
