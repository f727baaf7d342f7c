"""A feed from a real SFTP server, through the app and the real import on both databases:
the host key is shown first and fetched nothing, trusted it imports, and a server that comes
back with another key fails the run and says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from fastapi.testclient import TestClient

from tests.changes.helpers import csv_of
from tests.feeds.conftest import make_feed, run_feed
from tests.feeds.servers import SftpServer


@pytest.fixture
def sftp(tmp_path: Path) -> Iterator[SftpServer]:
    root = tmp_path / "sftp"
    (root / "out").mkdir(parents=True)
    (root / "out" / "products-20261201.csv").write_bytes(csv_of([("OLD-1", "Old", "")]))
    (root / "out" / "products-20261202.csv").write_bytes(
        csv_of([("S-1", "Chair", ""), ("S-2", "Table", "")])
    )
    server = SftpServer(root)
    server.start()
    yield server
    server.stop()


def test_an_sftp_feed_pins_the_host_key_and_takes_the_newest_file(
    client: TestClient, sftp: SftpServer, tmp_path: Path
) -> None:
    feed = make_feed(
        client, sftp.url("/out/products-*.csv"), password=sftp.password, name="Supplier SFTP"
    )
    assert feed["credentials"] == ["password"]

    tested = client.post(f"/api/feeds/{feed['id']}/test").json()
    assert tested["ok"] is False and tested["host_key_known"] is False
    assert tested["host_key"] == sftp.fingerprint
    unknown = run_feed(client, feed["id"])
    assert unknown["status"] == "failed"
    assert unknown["host_key"] == sftp.fingerprint
    assert sftp.fingerprint in unknown["reason"]
    assert client.get("/api/products").json()["items"] == []

    assert client.patch(f"/api/feeds/{feed['id']}", json={"host_key": sftp.fingerprint}).is_success
    tested = client.post(f"/api/feeds/{feed['id']}/test").json()
    assert tested["ok"] is True, tested
    assert tested["preview"]["columns"] == ["sku", "name", "description"]
    ran = run_feed(client, feed["id"])
    assert ran["status"] == "imported", ran
    assert ran["filename"] == "products-20261202.csv"
    skus = sorted(item["sku"] for item in client.get("/api/products").json()["items"])
    assert skus == ["S-1", "S-2"]

    # The server is replaced by one with another key: the run fails and names both keys.
    sftp.stop()
    impostor = SftpServer(sftp.root, host_key=asyncssh.generate_private_key("ssh-ed25519"))
    impostor.start()
    try:
        client.patch(
            f"/api/feeds/{feed['id']}",
            json={"url": impostor.url("/out/products-*.csv"), "host_key": sftp.fingerprint},
        )
        changed = run_feed(client, feed["id"])
    finally:
        impostor.stop()
        sftp.start()  # the fixture stops it again
    assert changed["status"] == "failed"
    assert impostor.fingerprint in changed["reason"] and "changed" in changed["reason"]
