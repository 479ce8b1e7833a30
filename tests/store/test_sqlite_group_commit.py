"""SQLite commits concurrent writes together; each caller still gets its own outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hub.core.model import QueuedSet
from hub.store import SQLiteStore
from tests.store.test_store_contract import make_stream, queued


async def test_concurrent_writes_share_commits_but_fail_alone(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "hub.sqlite3")
    await store.open()
    try:
        await store.create_stream(make_stream("s1"))
        await store.enqueue([queued("s1", "first")])
        broken = QueuedSet("s1", "bad", None, "urn:x")  # type: ignore[arg-type]  # NOT NULL set_jwt

        calls = [store.enqueue([queued("s1", f"q-{n}")]) for n in range(40)]
        calls.insert(20, store.enqueue([queued("s1", "fresh"), broken]))
        results = await asyncio.gather(*calls, return_exceptions=True)

        assert isinstance(results[20], ValueError)  # the bad write fails alone, all of it ...
        assert [r for i, r in enumerate(results) if i != 20] == [None] * 40  # ... the others stand
        jtis = [item.jti for item in await store.pending("s1", 100)]
        assert jtis == ["first", *(f"q-{n}" for n in range(40))]  # in call order; "fresh" rolled back
    finally:
        await store.close()


async def test_close_commits_the_writes_already_accepted(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    await store.create_stream(make_stream("s1"))
    writes = [asyncio.ensure_future(store.enqueue([queued("s1", f"q-{n}")])) for n in range(20)]
    await asyncio.sleep(0)  # the writes are queued, not yet committed
    await store.close()
    assert all(w.done() and w.exception() is None for w in writes)

    reopened = SQLiteStore(path)
    await reopened.open()
    try:
        assert await reopened.count_pending("s1") == 20
    finally:
        await reopened.close()
