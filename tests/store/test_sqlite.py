"""What only the SQLite store promises: durable settings, a free event loop, clean failures."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

import hub.store.sqlite_engine as sqlite_engine
from hub.core.model import Delivery, QueuedSet, Stream, SubjectEntry
from hub.errors import ConfigError, StoreUnavailable
from hub.store import SQLiteStore, open_store
from hub.store.outages import describe_outage

SYNCHRONOUS_FULL, SYNCHRONOUS_NORMAL = 2, 1  # what PRAGMA synchronous reports


def a_stream(stream_id: str = "s1") -> Stream:
    return Stream(
        stream_id=stream_id,
        owner="alice",
        iss="https://hub.example",
        aud="https://rx.example",
        delivery=Delivery(method="urn:ietf:rfc:8936"),
        events_delivered=("https://schemas.openid.net/secevent/caep/event-type/session-revoked",),
    )


def a_set(jti: str, stream_id: str = "s1") -> QueuedSet:
    return QueuedSet(stream_id=stream_id, jti=jti, set_jwt="h.p.s", event_type="urn:example:event")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "hub.sqlite3"


@pytest.fixture
async def sqlite_store(db_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(db_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def read_pragma(path: Path, name: str) -> object:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


# -- settings ---------------------------------------------------------------------------------
async def test_open_creates_the_directory_and_a_wal_database(
    sqlite_store: SQLiteStore, db_path: Path
) -> None:
    assert db_path.is_file()
    assert read_pragma(db_path, "journal_mode") == "wal"  # WAL is a property of the file
    pragmas = await sqlite_store.pragmas()
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["foreign_keys"] == 1
    assert pragmas["busy_timeout"] == sqlite_engine.BUSY_TIMEOUT_MS
    assert read_pragma(db_path, "user_version") == sqlite_engine.SCHEMA_VERSION


async def test_synchronous_is_full_by_default_so_a_2xx_survives_power_loss(
    sqlite_store: SQLiteStore,
) -> None:
    assert (await sqlite_store.pragmas())["synchronous"] == SYNCHRONOUS_FULL


async def test_synchronous_normal_can_be_chosen(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "hub.sqlite3", synchronous="normal")
    await store.open()
    try:
        assert (await store.pragmas())["synchronous"] == SYNCHRONOUS_NORMAL
    finally:
        await store.close()


def test_synchronous_off_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SQLiteStore(tmp_path / "hub.sqlite3", synchronous="OFF")


async def test_a_database_from_a_newer_hub_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {sqlite_engine.SCHEMA_VERSION + 1}")
    conn.close()
    store = SQLiteStore(db_path)

    with pytest.raises(ConfigError, match="schema version"):
        await store.open()
    await store.close()


# -- the event loop stays free ----------------------------------------------------------------
async def test_the_event_loop_keeps_running_while_a_write_waits_for_the_disk(
    sqlite_store: SQLiteStore, db_path: Path
) -> None:
    await sqlite_store.create_stream(a_stream())
    # Another connection holds the write lock, so the store's write must wait; if that wait
    # happened on the event loop, nothing else could run until the busy timeout expired.
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(sqlite_store.enqueue([a_set(f"j{n}") for n in range(100)]))
        ticks = 0
        for _ in range(10):
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 10
        assert not write.done()
        blocker.execute("COMMIT")
    finally:
        blocker.close()

    await asyncio.wait_for(write, timeout=5)
    assert await sqlite_store.count_pending("s1") == 100


async def test_concurrent_calls_are_serialised_without_errors(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.create_stream(a_stream())

    await asyncio.gather(*(sqlite_store.enqueue([a_set(f"j{n}")]) for n in range(50)))

    assert await sqlite_store.count_pending("s1") == 50


# -- failures ---------------------------------------------------------------------------------
async def test_a_locked_database_is_unavailable_without_leaking_sql(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_engine, "BUSY_TIMEOUT_MS", 50)
    store = SQLiteStore(db_path)
    await store.open()
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as caught:
            await store.create_stream(a_stream())
    finally:
        blocker.close()
        await store.close()

    assert caught.value.status_code == 503
    assert "INSERT" not in caught.value.description
    # The operator sees the real cause: the web edge logs it once per outage (store_unavailable).
    cause = caught.value.__cause__
    assert cause is not None and "locked" in describe_outage(cause)


async def test_calls_before_open_or_after_close_fail_clearly(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_stream("s1")

    await store.open()
    await store.close()
    await store.close()  # closing twice is harmless

    with pytest.raises(RuntimeError, match="closed"):
        await store.get_stream("s1")
    with pytest.raises(RuntimeError, match="closed"):
        await store.pending("s1", 0)
    assert await store.ping() is False


async def test_close_releases_the_file_and_folds_the_wal_back_into_it(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    await store.open()
    await store.create_stream(a_stream())
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.exists()

    await store.close()

    assert not wal.exists()  # the last connection closed: checkpointed, nothing left open


# -- open_store -------------------------------------------------------------------------------
async def test_open_store_makes_an_unopened_sqlite_store_in_the_data_dir(tmp_path: Path) -> None:
    store = open_store("sqlite", data_dir=tmp_path, sqlite_synchronous="NORMAL")

    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "hub.sqlite3"
    assert not store.path.exists()


def test_open_store_refuses_kinds_it_cannot_make(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sqlite, redis"):
        open_store("postgres", data_dir=tmp_path, redis_url="redis://localhost:6379/0")


async def test_long_id_lists_are_split_into_batches_and_merged(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny batches make every list span several statements, as 500+ ids would in production.
    monkeypatch.setattr(sqlite_engine, "MAX_PARAMS", 2)
    for sid in ("s1", "s2", "s3"):
        await sqlite_store.create_stream(a_stream(sid))
    await sqlite_store.enqueue([a_set(f"j{n}") for n in range(5)])
    entry = SubjectEntry(stream_id="s2", key="k", subject={"format": "opaque", "id": "x"})
    other = SubjectEntry(stream_id="s3", key="k", subject={"format": "opaque", "id": "y"})
    await sqlite_store.put_subject(entry, ["a", "b", "c"])
    await sqlite_store.put_subject(other, ["z"])

    assert sorted(await sqlite_store.get_streams(["s3", "nope", "s1", "s2", "s1"])) == ["s1", "s2", "s3"]
    # batches [a, x], [z, y], [c, nope]: found in several, the first entry still comes once
    assert await sqlite_store.find_subjects(["a", "x", "z", "y", "c", "nope"]) == [entry, other]
    assert await sqlite_store.complete("s1", ["j0", "j1", "zz", "j3", "j4"], at=1.0) == 4


# -- leases -----------------------------------------------------------------------------------
async def test_leases_are_cleared_when_the_store_is_reopened(db_path: Path) -> None:
    # One hub process per file: a lease left behind was held by an earlier run of this process,
    # so the restarted hub must not wait out its ttl before pushing or running jobs again.
    store = SQLiteStore(db_path)
    await store.open()
    assert await store.acquire_lease("push:s1", "run-1", now=100.0, ttl=3600.0) is True
    assert await store.acquire_lease("push:s1", "run-2", now=101.0, ttl=3600.0) is False
    await store.close()

    reopened = SQLiteStore(db_path)
    await reopened.open()
    try:
        assert await reopened.acquire_lease("push:s1", "run-2", now=102.0, ttl=3600.0) is True
    finally:
        await reopened.close()


async def test_a_cli_opening_the_file_beside_a_running_hub_keeps_its_leases(db_path: Path) -> None:
    hub_store = SQLiteStore(db_path)
    await hub_store.open()
    try:
        assert await hub_store.acquire_lease("push:s1", "hub-run", now=100.0, ttl=3600.0) is True
        cli_store = SQLiteStore(db_path, serving=False)  # e.g. `ssf-hub issuers add`
        await cli_store.open()
        await cli_store.close()
        assert await hub_store.acquire_lease("push:s1", "other", now=101.0, ttl=3600.0) is False
    finally:
        await hub_store.close()


async def test_finding_all_subject_streams_uses_an_index_not_a_scan(db_path: Path) -> None:
    # Every emit asks this; a scan of every stream made routing cost grow with stream count.
    store = SQLiteStore(db_path)
    await store.open()
    await store.close()
    conn = sqlite3.connect(db_path)
    try:
        sql = "SELECT stream_id FROM streams WHERE subject_mode = 'ALL' ORDER BY created_at, stream_id"
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
    finally:
        conn.close()
    assert "INDEX streams_all_subjects" in plan, plan  # walks only the ALL streams' index entries


async def test_stream_reads_are_served_from_memory_until_the_stream_is_written(
    sqlite_store: SQLiteStore,
) -> None:
    await sqlite_store.create_stream(a_stream())
    first = await sqlite_store.get_stream("s1")
    assert first is not None
    assert await sqlite_store.get_stream("s1") is first  # decoded once, then kept
    assert (await sqlite_store.get_streams(["s1"]))["s1"] is first
    await sqlite_store.save_stream(replace(first, description="changed"))
    changed = await sqlite_store.get_stream("s1")
    assert changed is not None and changed.description == "changed"
    assert await sqlite_store.delete_stream("s1")
    assert await sqlite_store.get_stream("s1") is None
    assert await sqlite_store.get_streams(["s1"]) == {}


async def test_a_stream_read_that_overlaps_a_write_is_not_kept(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.create_stream(a_stream())
    for round_ in range(20):
        reads = [asyncio.create_task(sqlite_store.get_stream("s1")) for _ in range(3)]
        await asyncio.sleep(0)  # the reads are queued on the store's thread before the write
        await sqlite_store.save_stream(replace(a_stream(), description=f"v{round_}"))
        await asyncio.gather(*reads)
        latest = await sqlite_store.get_stream("s1")
        assert latest is not None and latest.description == f"v{round_}"


async def test_the_database_and_its_wal_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    # Issue 13: the file holds receivers' push authorization_header values.
    path = tmp_path / "hub.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.create_stream(a_stream())
        for file in (path, path.with_name(path.name + "-wal")):
            assert file.stat().st_mode & 0o777 == 0o600, file
    finally:
        await store.close()
    path.chmod(0o644)  # a file an older hub created
    reopened = SQLiteStore(path)
    await reopened.open()
    await reopened.close()
    assert path.stat().st_mode & 0o777 == 0o600
