"""SQLite commits concurrent ingests together; each caller still gets its own outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.core.model import IngestReceipt, QueuedSet
from hub.store import SQLiteStore
from tests.store.test_store_contract import make_stream, queued


def receipt(jti: str) -> IngestReceipt:
    return IngestReceipt("https://idp.example", jti, 1000.0, 2000.0, jti)


async def test_concurrent_ingests_each_get_their_own_answer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "hub.sqlite3")
    await store.open()
    try:
        await store.create_stream(make_stream("s1"))
        broken = QueuedSet("s1", "bad", None, "urn:x")  # type: ignore[arg-type]  # NOT NULL set_jwt

        calls = [store.ingest(receipt(f"up-{n}"), [queued("s1", f"q-{n}")]) for n in range(40)]
        calls.insert(20, store.ingest(receipt("up-bad"), [broken]))
        calls.append(store.ingest(receipt("up-3"), [queued("s1", "dup")]))  # a duplicate in the crowd
        results = await asyncio.gather(*calls, return_exceptions=True)

        assert isinstance(results[20], ValueError)  # the bad one fails alone ...
        good = results[:20] + results[21:-1]
        assert good == [True] * 40  # ... the others are committed
        assert results[-1] is False
        assert len(await store.pending("s1", 100)) == 40
        assert await store.was_ingested("https://idp.example", "up-bad", now=1500.0) is False
    finally:
        await store.close()


async def test_an_ingest_on_a_closed_store_fails_at_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "hub.sqlite3")
    await store.open()
    await store.close()

    with pytest.raises(RuntimeError, match="closed"):
        await store.ingest(receipt("up-1"), [])
