"""The upload parser: storage writes run off the event loop, and what it stores is the file."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from starlette.requests import Request

from product_importer.imports.storage import UploadStorage
from product_importer.imports.upload import UploadError, receive_upload

BOUNDARY = "testboundary1234"


class ThreadRecordingStorage(UploadStorage):
    """Real local storage that notes which thread every blocking call ran on."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.threads: list[str] = []

    def open_write(self, key: str) -> BinaryIO:
        self.threads.append(threading.current_thread().name)
        sink = super().open_write(key)
        recorder = self

        class Recording:
            def write(self, data: bytes) -> int:
                recorder.threads.append(threading.current_thread().name)
                return sink.write(data)

            def close(self) -> None:
                recorder.threads.append(threading.current_thread().name)
                sink.close()

        return Recording()  # type: ignore[return-value]

    def delete(self, key: str) -> None:
        self.threads.append(threading.current_thread().name)
        super().delete(key)


def _body(content: bytes, closing: bool = True) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="p.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return head + content + (f"\r\n--{BOUNDARY}--\r\n".encode() if closing else b"")


def _request(body: bytes, piece: int = 65_536) -> Request:
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)]

    async def receive() -> dict[str, Any]:
        if pieces:
            return {"type": "http.request", "body": pieces.pop(0), "more_body": bool(pieces)}
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/imports",
        "headers": [
            (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return Request(scope, receive)


LOOP_THREAD = "test-event-loop"


def _run(storage: UploadStorage, body: bytes, limit: int = 1 << 30) -> Any:
    """Run the upload on an event loop of its own thread (the browser tests' Playwright may
    hold a loop in the main thread of this test process)."""
    outcome: dict[str, Any] = {}

    def loop() -> None:
        try:
            outcome["stored"] = asyncio.run(receive_upload(_request(body), storage, limit))
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=loop, name=LOOP_THREAD)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return LOOP_THREAD, outcome["stored"]


def test_a_large_upload_is_stored_whole_without_blocking_the_event_loop(tmp_path: Path) -> None:
    storage = ThreadRecordingStorage(tmp_path)
    content = b"sku,name\n" + b"".join(b"SKU-%07d,Name %d\n" % (i, i) for i in range(300_000))
    loop_thread, stored = _run(storage, _body(content))
    assert stored.size == len(content)
    assert (tmp_path / stored.key).read_bytes() == content
    assert len(storage.threads) > 3
    assert loop_thread not in storage.threads


def test_an_over_size_upload_is_refused_and_removed_off_the_event_loop(tmp_path: Path) -> None:
    storage = ThreadRecordingStorage(tmp_path)
    content = b"sku,name\n" + b"X-1,Name\n" * 500_000
    # Just over the limit, so the declared length passes and the streamed bytes trip it.
    with pytest.raises(UploadError) as refused:
        _run(storage, _body(content), limit=len(content) - 1000)
    assert refused.value.status_code == 413
    assert list(tmp_path.iterdir()) == []
    assert storage.threads
    assert LOOP_THREAD not in storage.threads


def test_a_body_cut_short_is_refused_and_nothing_is_kept(tmp_path: Path) -> None:
    storage = UploadStorage(tmp_path)
    with pytest.raises(UploadError) as refused:
        _run(storage, _body(b"sku,name\nA-1,Alpha\n" * 100_000, closing=False))
    assert refused.value.status_code == 400
    assert "cut short" in refused.value.message
    assert list(tmp_path.iterdir()) == []
