"""The SQLite store: one file, WAL, every write fsynced before its coroutine returns."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hub.core.model import AuditRecord, Stream, SubjectEntry
from hub.store.sealing import open_stream, seal_stream
from hub.store.sqlite_engine import dumps, in_batches
from hub.store.sqlite_ingest import SQLiteIngest
from hub.store.sqlite_upstreams import SQLiteUpstreams

# setErrs come from receivers; keep a bounded, recent window per stream for admins.
SET_ERRORS_KEPT = 1000
# Stream records kept decoded in memory: every poll and emit reads them, few requests write.
STREAM_CACHE_SIZE = 4096

_FIND_SUBJECTS = (
    "SELECT DISTINCT s.stream_id, s.key, s.subject, s.is_excluded FROM subject_index AS i "
    "JOIN subjects AS s USING (stream_id, key) WHERE i.index_key IN ({marks})"
)


def _subject(row: Sequence[Any]) -> SubjectEntry:
    return SubjectEntry(stream_id=row[0], key=row[1], subject=json.loads(row[2]), excluded=bool(row[3]))


class SQLiteStore(SQLiteIngest, SQLiteUpstreams):
    """The :class:`~hub.store.base.Store` on one SQLite file.

    Stream records read are kept decoded (a read was a third of a poll request's time). Every
    write of a stream in this process goes through this object, and a read that raced a write
    is not kept (``_stream_writes``). With several hub processes on the file (``serve
    --processes``), each write is also handed to :attr:`stream_changed`, which tells the other
    processes to :meth:`forget_stream` it (:mod:`hub.delivery.wakeup_local`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stream_cache: dict[str, Stream] = {}
        self._stream_writes = 0  # bumped before and after each stream write
        self.stream_changed: Callable[[str], None] | None = None

    def forget_stream(self, stream_id: str | None) -> None:
        """Drop a cached record another process changed (``None``: every record)."""
        if stream_id is None:
            self._stream_cache.clear()
        else:
            self._stream_cache.pop(stream_id, None)
        self._stream_writes += 1  # a read in flight may hold the old row: do not keep it

    async def _write_stream(self, stream_id: str, sql: str, params: Sequence[object]) -> int:
        # Forget before (no reader gets the old record from the cache) and after (a read that
        # overlapped the write may hold the old row, and must not be kept).
        self._stream_cache.pop(stream_id, None)
        self._stream_writes += 1
        try:
            return await self._change(sql, params)
        finally:
            self._stream_cache.pop(stream_id, None)
            self._stream_writes += 1
            if self.stream_changed is not None:
                self.stream_changed(stream_id)

    def _remember_streams(self, streams: Iterable[Stream], writes_before: int) -> None:
        if self._stream_writes != writes_before:
            return  # a stream write overlapped this read: what it read may be stale
        cache = self._stream_cache
        for stream in streams:
            if len(cache) >= STREAM_CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[stream.stream_id] = stream

    # -- streams -------------------------------------------------------------------------------
    async def create_stream(self, stream: Stream) -> None:
        await self._write_stream(
            stream.stream_id,
            "INSERT INTO streams (stream_id, owner, subject_mode, created_at, record) VALUES (?, ?, ?, ?, ?)",
            (stream.stream_id, *self._stream_columns(stream)),
        )

    async def get_stream(self, stream_id: str) -> Stream | None:
        cached = self._stream_cache.get(stream_id)
        if cached is not None:
            return cached
        writes_before = self._stream_writes
        rows = await self._quick_fetch("SELECT record FROM streams WHERE stream_id = ?", (stream_id,))
        if not rows:
            return None
        stream = self._stream(rows[0][0])
        self._remember_streams([stream], writes_before)
        return stream

    async def get_streams(self, stream_ids: Iterable[str]) -> dict[str, Stream]:
        cache = self._stream_cache
        found: dict[str, Stream] = {}
        missing: list[str] = []
        for sid in stream_ids:
            if (cached := cache.get(sid)) is not None:
                found[sid] = cached
            else:
                missing.append(sid)
        if missing:
            writes_before, sql = (
                self._stream_writes,
                "SELECT record FROM streams WHERE stream_id IN ({marks})",
            )
            rows = await self._quick_read(lambda c: [r for cur in in_batches(c, sql, missing) for r in cur])
            streams = [self._stream(row[0]) for row in rows]
            self._remember_streams(streams, writes_before)
            found.update((stream.stream_id, stream) for stream in streams)
        return found

    async def list_streams(self, owner: str | None = None) -> list[Stream]:
        if owner is None:
            rows = await self._fetch("SELECT record FROM streams ORDER BY created_at, stream_id")
        else:
            sql = "SELECT record FROM streams WHERE owner = ? ORDER BY created_at, stream_id"
            rows = await self._fetch(sql, (owner,))
        return [self._stream(row[0]) for row in rows]

    def _stream(self, text: str) -> Stream:
        return Stream.from_record(open_stream(json.loads(text), self.sealer))

    async def save_stream(self, stream: Stream) -> None:
        # An UPDATE of a stream deleted meanwhile changes nothing: a save never resurrects one.
        await self._write_stream(
            stream.stream_id,
            "UPDATE streams SET owner = ?, subject_mode = ?, created_at = ?, record = ? WHERE stream_id = ?",
            (*self._stream_columns(stream), stream.stream_id),
        )

    def _stream_columns(self, stream: Stream) -> tuple[object, ...]:
        """owner, subject_mode, created_at and record: the columns kept in sync with the record."""
        mode, record = stream.subject_mode.value, dumps(seal_stream(stream.to_record(), self.sealer))
        return (stream.owner, mode, stream.created_at, record)

    async def delete_stream(self, stream_id: str) -> bool:
        # Subjects, index rows, queued SETs and set errors go with it (ON DELETE CASCADE).
        sql = "DELETE FROM streams WHERE stream_id = ?"
        return await self._write_stream(stream_id, sql, (stream_id,)) > 0

    # -- subjects ------------------------------------------------------------------------------
    async def put_subject(self, entry: SubjectEntry, index_keys: Sequence[str]) -> None:
        ident = (entry.stream_id, entry.key)
        keys = [(key, *ident) for key in dict.fromkeys(index_keys)]

        def tx(conn: sqlite3.Connection) -> None:
            # An upsert, not INSERT OR REPLACE: a replace would delete the row and cascade.
            conn.execute(
                "INSERT INTO subjects (stream_id, key, subject, is_excluded) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (stream_id, key) DO UPDATE SET subject = excluded.subject, "
                "is_excluded = excluded.is_excluded",
                (*ident, dumps(entry.subject), int(entry.excluded)),
            )
            conn.execute("DELETE FROM subject_index WHERE stream_id = ? AND key = ?", ident)
            conn.executemany("INSERT INTO subject_index (index_key, stream_id, key) VALUES (?, ?, ?)", keys)

        await self._call(tx, write=True)

    async def remove_subject(self, stream_id: str, key: str) -> bool:
        # Its index rows go with it (ON DELETE CASCADE).
        sql = "DELETE FROM subjects WHERE stream_id = ? AND key = ?"
        return await self._change(sql, (stream_id, key)) > 0

    async def list_subjects(self, stream_id: str) -> list[SubjectEntry]:
        sql = "SELECT stream_id, key, subject, is_excluded FROM subjects WHERE stream_id = ? ORDER BY key"
        return [_subject(row) for row in await self._fetch(sql, (stream_id,))]

    async def find_subjects(self, index_keys: Iterable[str]) -> list[SubjectEntry]:
        keys = list(index_keys)
        rows = await self._quick_read(
            lambda c: [r for cur in in_batches(c, _FIND_SUBJECTS, keys) for r in cur]
        )
        # A subject filed under keys of two batches comes back twice; keep it once.
        found = {(row[0], row[1]): row for row in rows}
        return [_subject(found[ident]) for ident in sorted(found)]

    async def streams_with_all_subjects(self) -> list[str]:
        # The literal (not a parameter) lets SQLite use the partial index streams_all_subjects.
        sql = "SELECT stream_id FROM streams WHERE subject_mode = 'ALL' ORDER BY created_at, stream_id"
        return [str(row[0]) for row in await self._quick_fetch(sql)]

    # -- records -------------------------------------------------------------------------------
    async def record_set_errors(
        self, stream_id: str, errors: Mapping[str, tuple[str, str]], at: float
    ) -> None:
        rows = [(stream_id, jti, err, desc, at) for jti, (err, desc) in errors.items()]

        def tx(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO set_errors (stream_id, jti, err, description, at) "
                "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM streams WHERE stream_id = ?1)",
                rows,
            )
            conn.execute(
                "DELETE FROM set_errors WHERE stream_id = ?1 AND id <= (SELECT id FROM set_errors "
                "WHERE stream_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                (stream_id, SET_ERRORS_KEPT),
            )

        await self._call(tx, write=True)

    async def list_set_errors(self, stream_id: str, limit: int = 100) -> list[dict[str, object]]:
        sql = "SELECT jti, err, description, at FROM set_errors WHERE stream_id = ? ORDER BY id DESC LIMIT ?"
        rows = await self._fetch(sql, (stream_id, max(limit, 0)))
        return [{"jti": r[0], "err": r[1], "description": r[2], "at": r[3]} for r in rows]

    async def append_audit(self, record: AuditRecord) -> None:
        await self._change(
            "INSERT INTO audit (at, kind, stream_id, detail) VALUES (?, ?, ?, ?)",
            (record.at, record.kind, record.stream_id, dumps(record.detail)),
        )

    async def list_audit(
        self,
        stream_id: str | None = None,
        limit: int = 100,
        *,
        since: float | None = None,
        txn: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        conditions: list[str] = []
        params: list[object] = []
        for column, value in (
            ("stream_id", stream_id),
            ("json_extract(detail, '$.txn')", txn),
            ("json_extract(detail, '$.actor')", actor),
        ):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            conditions.append("at >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        # Only fixed column expressions are formatted in; every value is a bound parameter.
        sql = f"SELECT at, kind, stream_id, detail FROM audit {where}ORDER BY id DESC LIMIT ?"  # noqa: S608
        rows = await self._fetch(sql, (*params, max(limit, 0)))
        return [AuditRecord(at=r[0], kind=r[1], stream_id=r[2], detail=json.loads(r[3])) for r in rows]

    async def prune_audit(self, before: float) -> int:
        return await self._change("DELETE FROM audit WHERE at < ?", (before,))
