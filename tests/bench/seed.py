"""Fills a hub's SQLite data dir with many poll streams and subjects before the hub starts.

Registering a million subjects through the API takes far longer than the benchmark, so the
streams go in through ``hub.store`` (``Store.create_stream``) and the subjects in bulk with
the same rows ``Store.put_subject`` writes (keys from ``hub.core.subjects``), then a sample is
read back through ``Store.find_subjects`` to prove the hub will find them. Stream ``i`` gets
the subjects ``user-<i>-<j>@bench.example`` for ``j < subjects_per_stream``.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hub.core.discovery import POLL_PATH
from hub.core.model import POLL_METHOD, Delivery, Stream
from hub.store.sqlite import SQLiteStore
from hub.store.sqlite_engine import dumps
from receivers.subjects import index_keys, subject_key

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CHUNK = 50_000


def subject(stream: int, j: int) -> dict[str, str]:
    return {"format": "email", "email": f"user-{stream}-{j}@bench.example"}


def stream_id(i: int) -> str:
    return f"bench-{i:06d}"


def _rows(
    streams: int, per_stream: int, everyone: Mapping[str, str] | None
) -> Iterator[tuple[tuple[object, ...], list[tuple[str, str, str]]]]:
    for i in range(streams):
        sid = stream_id(i)
        mine = [subject(i, j) for j in range(per_stream)]
        for subj in [*mine, everyone] if everyone else mine:
            key = subject_key(subj)
            yield (sid, key, dumps(subj), 0), [(k, sid, key) for k in index_keys(subj)]


async def seed(
    data_dir: Path,
    *,
    issuer: str,
    streams: int,
    subjects_per_stream: int,
    everyone: Mapping[str, str] | None = None,
    owner: str = "bench",
    extra_sql: str | None = None,
) -> float:
    """Seed ``data_dir`` (``everyone``: a subject registered on every stream too; ``extra_sql``
    run on the file at the end, e.g. an index the hub does not make yet); returns the seconds
    it took."""
    started = time.perf_counter()
    path = data_dir / "hub.sqlite3"
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    now = time.time()
    for i in range(streams):
        sid = stream_id(i)
        await store.create_stream(
            Stream(
                stream_id=sid,
                owner=owner,
                iss=issuer,
                aud=owner,
                delivery=Delivery(method=POLL_METHOD, endpoint_url=f"{issuer}{POLL_PATH}/{sid}"),
                events_delivered=(SESSION_REVOKED,),
                events_requested=(SESSION_REVOKED,),
                created_at=now + i * 1e-6,
                updated_at=now,
                last_activity_at=now,
            )
        )
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    rows = _rows(streams, subjects_per_stream, everyone)
    while chunk := list(itertools.islice(rows, CHUNK)):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO subjects (stream_id, key, subject, is_excluded) VALUES (?, ?, ?, ?)",
                         [r for r, _ in chunk])  # fmt: skip
        conn.executemany("INSERT INTO subject_index (index_key, stream_id, key) VALUES (?, ?, ?)",
                         [k for _, keys in chunk for k in keys])  # fmt: skip
        conn.execute("COMMIT")
    if extra_sql:
        conn.executescript(extra_sql)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    check = SQLiteStore(path)
    await check.open()
    try:
        last = subject(streams - 1, subjects_per_stream - 1)
        found = await check.find_subjects(index_keys(last))
        if [e.stream_id for e in found] != [stream_id(streams - 1)]:
            raise RuntimeError(f"seeded subjects are not found through the store: {found}")
    finally:
        await check.close()
    return time.perf_counter() - started


def seed_sync(data_dir: Path, **kwargs: Any) -> float:
    return asyncio.run(seed(data_dir, **kwargs))
