"""The SQLite store: one file, WAL, every write fsynced before its coroutine returns.

All sqlite work runs on one dedicated worker thread, so the event loop never waits on
``fsync`` and calls are serialised without locks; each public method is one transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from hub.core.model import AuditRecord, QueuedSet, Stream, SubjectEntry, SubjectMode
from hub.errors import ConfigError, Unavailable

_log = logging.getLogger("hub.store")

T = TypeVar("T")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
# SQLite's default SQLITE_MAX_VARIABLE_NUMBER was 999 before 3.32; stay well below it.
MAX_PARAMS = 500
# setErrs come from receivers; keep a bounded, recent window per stream for admins.
SET_ERRORS_KEPT = 1000
SYNCHRONOUS_LEVELS = ("FULL", "EXTRA", "NORMAL")  # OFF would break "2xx means on disk"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY, owner TEXT NOT NULL, subject_mode TEXT NOT NULL,
    created_at REAL NOT NULL, record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS streams_owner ON streams (owner, created_at);

CREATE TABLE IF NOT EXISTS subjects (
    stream_id TEXT NOT NULL REFERENCES streams (stream_id) ON DELETE CASCADE,
    key TEXT NOT NULL, subject TEXT NOT NULL, is_excluded INTEGER NOT NULL,
    PRIMARY KEY (stream_id, key));
CREATE TABLE IF NOT EXISTS subject_index (
    index_key TEXT NOT NULL, stream_id TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (index_key, stream_id, key),
    FOREIGN KEY (stream_id, key) REFERENCES subjects (stream_id, key) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS subject_index_entry ON subject_index (stream_id, key);

CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL REFERENCES streams (stream_id) ON DELETE CASCADE,
    jti TEXT NOT NULL, set_jwt TEXT NOT NULL, event_type TEXT NOT NULL, txn TEXT,
    control INTEGER NOT NULL, queued_at REAL NOT NULL,
    UNIQUE (stream_id, jti));
CREATE INDEX IF NOT EXISTS queue_order ON queue (stream_id, seq);
-- control SETs are few: a partial index keeps paused-stream reads cheap
CREATE INDEX IF NOT EXISTS queue_control ON queue (stream_id, seq) WHERE control = 1;

CREATE TABLE IF NOT EXISTS set_errors (
    id INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL REFERENCES streams (stream_id) ON DELETE CASCADE,
    jti TEXT NOT NULL, err TEXT NOT NULL, description TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS set_errors_stream ON set_errors (stream_id, id);

-- no foreign key: the audit trail outlives the streams it mentions
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL, kind TEXT NOT NULL, stream_id TEXT, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_stream ON audit (stream_id, id);
"""

_QUEUE_COLUMNS = "stream_id, jti, set_jwt, event_type, txn, control, queued_at"
# Items for a stream deleted meanwhile are dropped (no orphans); a jti already queued on
# the stream keeps its place. Only that conflict is ignored: NOT NULL still fails the batch.
_ENQUEUE = f"""
INSERT INTO queue ({_QUEUE_COLUMNS})
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM streams WHERE stream_id = ?1)
ON CONFLICT (stream_id, jti) DO NOTHING
"""  # noqa: S608 - a constant column list, no data
_PENDING = f"SELECT {_QUEUE_COLUMNS} FROM queue WHERE stream_id = ? {{control}} ORDER BY seq LIMIT ?"  # noqa: S608
_FIND_SUBJECTS = (
    "SELECT DISTINCT s.stream_id, s.key, s.subject, s.is_excluded FROM subject_index AS i "
    "JOIN subjects AS s USING (stream_id, key) WHERE i.index_key IN ({marks})"
)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _in_batches(conn: sqlite3.Connection, sql: str, values: list[str], *head: object) -> Iterator[Any]:
    """Run ``sql`` once per batch of distinct ``values``, its ``IN ({marks})`` list filled."""
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), MAX_PARAMS):
        batch = unique[start : start + MAX_PARAMS]
        yield conn.execute(sql.format(marks=", ".join("?" * len(batch))), (*head, *batch))


def _subject(row: Sequence[Any]) -> SubjectEntry:
    return SubjectEntry(stream_id=row[0], key=row[1], subject=json.loads(row[2]), excluded=bool(row[3]))


def _queued(row: Sequence[Any]) -> QueuedSet:
    stream_id, jti, set_jwt, event_type, txn, control, queued_at = row
    return QueuedSet(stream_id, jti, set_jwt, event_type, txn, bool(control), queued_at)


def _pragmas(conn: sqlite3.Connection) -> dict[str, object]:
    names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "user_version")
    return {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in names}


@contextmanager
def _transaction(conn: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
    # IMMEDIATE takes the write lock up front, so a writer never fails half-way on an upgrade.
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (disk full) already rolled back; a failed ROLLBACK must not hide the cause.
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


class SQLiteStore:
    """The :class:`~hub.store.base.Store` on one SQLite file."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL") -> None:
        level = synchronous.upper()
        if level not in SYNCHRONOUS_LEVELS:
            choices = ", ".join(SYNCHRONOUS_LEVELS)
            raise ConfigError(f"sqlite synchronous must be one of {choices}, not {synchronous!r}")
        self.path = Path(path)
        self._synchronous = level
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # -- plumbing: every call runs fn(conn) in one transaction on the worker thread ---------------
    def _ensure_open(self) -> ThreadPoolExecutor:
        if self._closed:
            raise RuntimeError("SQLiteStore is closed")
        if self._executor is None:
            raise RuntimeError("SQLiteStore is not open; await open() first")
        return self._executor

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        executor = self._ensure_open()
        return await asyncio.get_running_loop().run_in_executor(executor, self._run, fn, write)

    def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("SQLiteStore is closed")
        try:
            with _transaction(conn, write=write):
                result = fn(conn)
        except sqlite3.IntegrityError as exc:
            raise ValueError("the store rejected the write: a constraint was violated") from exc
        except sqlite3.ProgrammingError:
            raise
        except sqlite3.DatabaseError as exc:
            # locked, disk I/O error, disk full, corrupt file: the client may retry later
            _log.error("sqlite store operation failed: %s", exc)
            raise Unavailable("the hub's store is temporarily unavailable") from exc
        # A cursor finalised on the event loop thread would reset a cached statement while the
        # worker reuses it ("bad parameter or other API misuse"): results must be plain data.
        if isinstance(result, sqlite3.Cursor):
            raise TypeError("a store call must not return a cursor")
        return result

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return await self._call(lambda c: c.execute(sql, params).fetchall(), write=False)

    async def _change(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one write statement; the number of rows it changed."""
        return await self._call(lambda c: c.execute(sql, params).rowcount, write=True)

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_MS)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                _log.warning("sqlite store %s runs in journal mode %s, not WAL", self.path, mode)
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path} has schema version {version}; this hub knows {SCHEMA_VERSION}"
                )
            # executescript commits any open transaction first, so the script brings its own.
            conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;")
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        if self._closed:
            raise RuntimeError("SQLiteStore is closed; make a new one to reopen the file")
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-store-sqlite")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._connect)
        except sqlite3.DatabaseError as exc:
            executor.shutdown(wait=True)
            _log.error("cannot open sqlite store %s: %s", self.path, exc)
            raise Unavailable("the hub's store could not be opened") from exc
        except BaseException:
            executor.shutdown(wait=True)
            raise
        self._executor = executor

    async def close(self) -> None:
        """Close the file and stop the worker thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # Calls already submitted finish first: the single worker thread is FIFO.
        await asyncio.get_running_loop().run_in_executor(executor, self._disconnect)
        executor.shutdown(wait=True)

    async def ping(self) -> bool:
        try:
            await self._fetch("SELECT 1")
        except Exception as exc:
            _log.warning("sqlite store ping failed: %s", exc)
            return False
        return True

    async def pragmas(self) -> dict[str, object]:
        """The connection's effective settings, for diagnostics."""
        return await self._call(_pragmas, write=False)

    # -- streams -------------------------------------------------------------------------------
    async def create_stream(self, stream: Stream) -> None:
        await self._change(
            "INSERT INTO streams (stream_id, owner, subject_mode, created_at, record) VALUES (?, ?, ?, ?, ?)",
            (stream.stream_id, *self._stream_columns(stream)),
        )

    async def get_stream(self, stream_id: str) -> Stream | None:
        rows = await self._fetch("SELECT record FROM streams WHERE stream_id = ?", (stream_id,))
        return Stream.from_record(json.loads(rows[0][0])) if rows else None

    async def get_streams(self, stream_ids: Iterable[str]) -> dict[str, Stream]:
        ids, sql = list(stream_ids), "SELECT record FROM streams WHERE stream_id IN ({marks})"
        rows = await self._call(lambda c: [r for cur in _in_batches(c, sql, ids) for r in cur], write=False)
        streams = [Stream.from_record(json.loads(row[0])) for row in rows]
        return {stream.stream_id: stream for stream in streams}

    async def list_streams(self, owner: str | None = None) -> list[Stream]:
        if owner is None:
            rows = await self._fetch("SELECT record FROM streams ORDER BY created_at, stream_id")
        else:
            sql = "SELECT record FROM streams WHERE owner = ? ORDER BY created_at, stream_id"
            rows = await self._fetch(sql, (owner,))
        return [Stream.from_record(json.loads(row[0])) for row in rows]

    async def save_stream(self, stream: Stream) -> None:
        # An UPDATE of a stream deleted meanwhile changes nothing: a save never resurrects one.
        await self._change(
            "UPDATE streams SET owner = ?, subject_mode = ?, created_at = ?, record = ? WHERE stream_id = ?",
            (*self._stream_columns(stream), stream.stream_id),
        )

    @staticmethod
    def _stream_columns(stream: Stream) -> tuple[object, ...]:
        """owner, subject_mode, created_at and record: the columns kept in sync with the record."""
        mode, record = stream.subject_mode.value, _dumps(stream.to_record())
        return (stream.owner, mode, stream.created_at, record)

    async def delete_stream(self, stream_id: str) -> bool:
        # Subjects, index rows, queued SETs and set errors go with it (ON DELETE CASCADE).
        return await self._change("DELETE FROM streams WHERE stream_id = ?", (stream_id,)) > 0

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
                (*ident, _dumps(entry.subject), int(entry.excluded)),
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
        rows = await self._call(
            lambda c: [r for cur in _in_batches(c, _FIND_SUBJECTS, keys) for r in cur], write=False
        )
        # A subject filed under keys of two batches comes back twice; keep it once.
        found = {(row[0], row[1]): row for row in rows}
        return [_subject(found[ident]) for ident in sorted(found)]

    async def streams_with_all_subjects(self) -> list[str]:
        sql = "SELECT stream_id FROM streams WHERE subject_mode = ? ORDER BY created_at, stream_id"
        return [str(row[0]) for row in await self._fetch(sql, (SubjectMode.ALL.value,))]

    # -- per-stream queues ---------------------------------------------------------------------
    async def enqueue(self, items: Sequence[QueuedSet]) -> None:
        rows = [
            (i.stream_id, i.jti, i.set_jwt, i.event_type, i.txn, int(i.control), i.queued_at) for i in items
        ]
        await self._call(lambda c: c.executemany(_ENQUEUE, rows).rowcount, write=True)

    async def pending(self, stream_id: str, limit: int, *, control_only: bool = False) -> list[QueuedSet]:
        sql = _PENDING.format(control="AND control = 1" if control_only else "")
        # SQLite reads a negative LIMIT as "no limit"; the contract reads it as none.
        return [_queued(row) for row in await self._fetch(sql, (stream_id, max(limit, 0)))]

    async def count_pending(self, stream_id: str, *, control_only: bool = False) -> int:
        sql = "SELECT count(*) FROM queue WHERE stream_id = ?"
        if control_only:
            sql = "SELECT count(*) FROM queue WHERE stream_id = ? AND control = 1"
        return int((await self._fetch(sql, (stream_id,)))[0][0])

    async def remove_pending(self, stream_id: str, jtis: Iterable[str]) -> int:
        ids, sql = list(jtis), "DELETE FROM queue WHERE stream_id = ? AND jti IN ({marks})"
        return await self._call(
            lambda c: sum(cur.rowcount for cur in _in_batches(c, sql, ids, stream_id)), write=True
        )

    async def purge_pending(self, stream_id: str, *, keep_control: bool = True) -> int:
        sql = "DELETE FROM queue WHERE stream_id = ?"
        if keep_control:
            sql = "DELETE FROM queue WHERE stream_id = ? AND control = 0"
        return await self._change(sql, (stream_id,))

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
            (record.at, record.kind, record.stream_id, _dumps(record.detail)),
        )

    async def list_audit(self, stream_id: str | None = None, limit: int = 100) -> list[AuditRecord]:
        if stream_id is None:
            sql = "SELECT at, kind, stream_id, detail FROM audit ORDER BY id DESC LIMIT ?"
            rows = await self._fetch(sql, (max(limit, 0),))
        else:
            sql = "SELECT at, kind, stream_id, detail FROM audit WHERE stream_id = ? ORDER BY id DESC LIMIT ?"
            rows = await self._fetch(sql, (stream_id, max(limit, 0)))
        return [AuditRecord(at=r[0], kind=r[1], stream_id=r[2], detail=json.loads(r[3])) for r in rows]
