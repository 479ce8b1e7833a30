"""The plumbing under the SQLite store: one connection, one worker thread, one schema.

All sqlite work runs on one dedicated worker thread, so the event loop never waits on
``fsync`` and calls are serialised without locks.

Writes commit in groups. With ``synchronous=FULL`` every commit waits for an ``fsync``
(about 1.6 ms on the development machine, so at most ~600 commits/s), and each emit, ack
and push outcome is a write. Writes that arrive while a commit is in progress wait, then
go in one transaction together, each in its own savepoint so a bad one fails alone; every
caller still returns only after the commit that holds its write (2xx still means on disk).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hub.errors import ConfigError, StoreUnavailable, Unavailable
from hub.store.sealing import Plain, Sealer

_log = logging.getLogger("hub.store")

T = TypeVar("T")

SCHEMA_VERSION = 5
BUSY_TIMEOUT_MS = 5000
SIBLING_MMAP_BYTES = 1 << 30  # address space, not memory: the OS pages the file in and out
# SQLite's default SQLITE_MAX_VARIABLE_NUMBER was 999 before 3.32; stay well below it.
MAX_PARAMS = 500
SYNCHRONOUS_LEVELS = ("FULL", "EXTRA", "NORMAL")  # OFF would break "2xx means on disk"
MAX_GROUP = 256  # writes per transaction: bounds how long one commit holds the writer

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

-- A SET stays in this table after it leaves the queue (state != 'pending') until the
-- retention job removes it: that is the delivery trace. Pending rows have partial indexes.
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id TEXT NOT NULL REFERENCES streams (stream_id) ON DELETE CASCADE,
    jti TEXT NOT NULL, set_jwt TEXT NOT NULL, event_type TEXT NOT NULL, txn TEXT,
    control INTEGER NOT NULL, queued_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', done_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0, last_error TEXT,
    UNIQUE (stream_id, jti));
CREATE INDEX IF NOT EXISTS queue_pending ON queue (stream_id, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS queue_control ON queue (stream_id, seq) WHERE state = 'pending' AND control = 1;
CREATE INDEX IF NOT EXISTS queue_jti ON queue (jti);
CREATE INDEX IF NOT EXISTS queue_txn ON queue (txn) WHERE txn IS NOT NULL;
CREATE INDEX IF NOT EXISTS queue_done ON queue (done_at) WHERE state != 'pending';

CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    stream_id TEXT NOT NULL, jti TEXT NOT NULL, at REAL NOT NULL, outcome TEXT NOT NULL,
    status INTEGER, error TEXT, latency_ms REAL NOT NULL,
    FOREIGN KEY (stream_id, jti) REFERENCES queue (stream_id, jti) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS attempts_set ON attempts (stream_id, jti, id);

CREATE TABLE IF NOT EXISTS health (
    stream_id TEXT PRIMARY KEY REFERENCES streams (stream_id) ON DELETE CASCADE,
    record TEXT NOT NULL);

-- Leases are process-local on SQLite (one hub process per file): cleared at open.
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL);

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

# Version 2 (issue #4): trusted upstream issuers, their change counter, and ingest receipts
# that refuse a duplicate (iss, jti) until they expire.
_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS issuers (iss TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ingested (
    iss TEXT NOT NULL, jti TEXT NOT NULL, received_at REAL NOT NULL, expires_at REAL NOT NULL, txn TEXT,
    PRIMARY KEY (iss, jti)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ingested_expiry ON ingested (expires_at);
"""

# Version 3 (issue #4): upstream subscriptions, the operator's configuration and the
# supervisor's state kept apart.
_SCHEMA_V3 = """
CREATE TABLE IF NOT EXISTS upstreams (
    upstream_id TEXT PRIMARY KEY, created_at REAL NOT NULL, config TEXT NOT NULL, state TEXT NOT NULL);
"""

# Version 4: every emit asks which streams take ALL subjects; without this index that was a
# scan of every stream (1.55 ms at 10,000 streams, 2 µs with it; tests/bench/scale.py).
_SCHEMA_V4 = """
CREATE INDEX IF NOT EXISTS streams_all_subjects ON streams (created_at, stream_id)
    WHERE subject_mode = 'ALL';
"""

# Version 5 (issue #14): remediation receipts, kept with their SET's trace row (retention and
# stream deletion remove them by the cascade).
_SCHEMA_V5 = """
CREATE TABLE IF NOT EXISTS remediation (
    id INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL REFERENCES queue (seq) ON DELETE CASCADE,
    action TEXT NOT NULL, count INTEGER NOT NULL, at REAL NOT NULL, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS remediation_set ON remediation (seq, id);
"""

# Forward migrations: _MIGRATIONS[n] takes a file at user_version n to n + 1 (0 is a new
# file). Each script is idempotent (IF NOT EXISTS), so two processes opening one old file
# at the same moment both succeed.
_MIGRATIONS: dict[int, str] = {0: _SCHEMA, 1: _SCHEMA_V2, 2: _SCHEMA_V3, 3: _SCHEMA_V4, 4: _SCHEMA_V5}


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def in_batches(conn: sqlite3.Connection, sql: str, values: list[str], *head: object) -> Iterator[Any]:
    """Run ``sql`` once per batch of distinct ``values``, its ``IN ({marks})`` list filled."""
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), MAX_PARAMS):
        batch = unique[start : start + MAX_PARAMS]
        yield conn.execute(sql.format(marks=", ".join("?" * len(batch))), (*head, *batch))


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


@dataclass
class _Write:
    fn: Callable[[sqlite3.Connection], Any]
    done: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _write_group(conn: sqlite3.Connection, group: Sequence[_Write]) -> list[Any]:
    """Run each write of ``group`` in its own savepoint of the caller's transaction.

    A write that raises is rolled back alone and its exception becomes its result; an
    error of the database itself (disk full, I/O) propagates and fails the whole group."""
    results: list[Any] = []
    for write in group:
        conn.execute("SAVEPOINT one_write")
        try:
            result = write.fn(conn)
            if isinstance(result, sqlite3.Cursor):
                raise TypeError("a store call must not return a cursor")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK TO one_write")
            failure = ValueError("the store rejected the write: a constraint was violated")
            failure.__cause__ = exc
            result = failure
        except sqlite3.DatabaseError:
            raise
        except Exception as exc:
            conn.execute("ROLLBACK TO one_write")
            result = exc
        conn.execute("RELEASE one_write")
        results.append(result)
    return results


def holder_alive(holder: str) -> bool:
    """Whether the process that made this lease holder (:func:`hub.store.base.lease_holder`)
    still runs on this machine; this process's own pid, at open, is an earlier run's."""
    pid_text = holder.split(".", 1)[0]
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


class SQLiteEngine:
    """Runs functions against one SQLite connection on one worker thread."""

    sealer: Sealer

    def use_secrets(self, sealer: Sealer) -> None:
        """Seal receivers' credentials in stored records from now on (hub.keys.secrets)."""
        self.sealer = sealer

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        serving: bool = True,
        sibling_processes: bool = False,
    ) -> None:
        self.sealer = Plain()  # hub.keys.secrets, once the keys are loaded
        level = synchronous.upper()
        if level not in SYNCHRONOUS_LEVELS:
            choices = ", ".join(SYNCHRONOUS_LEVELS)
            raise ConfigError(f"sqlite synchronous must be one of {choices}, not {synchronous!r}")
        self.path = Path(path)
        self._synchronous = level
        # Only the hub process may clear leases at open; a CLI command opening the same file
        # beside a running hub must leave that hub's leases alone.
        self._serving = serving
        # One of several hub processes on the file (serve --processes): at open it frees only
        # the leases of processes that are gone (its predecessor's, after a crash).
        self._sibling_processes = sibling_processes
        self._writer_lock: int | None = None  # see _connect
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._writes: list[_Write] = []
        self._writer: asyncio.Task[None] | None = None
        self._reader: sqlite3.Connection | None = None  # the event loop's own, for quick reads

    # -- plumbing: every call runs fn(conn) in one transaction on the worker thread ---------------
    def _ensure_open(self) -> ThreadPoolExecutor:
        if self._closed:
            raise RuntimeError("the SQLite store is closed")
        if self._executor is None:
            raise RuntimeError("the SQLite store is not open; await open() first")
        return self._executor

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        executor = self._ensure_open()
        if not write:
            return await asyncio.get_running_loop().run_in_executor(executor, self._run, fn, False)
        pending = _Write(fn)
        self._writes.append(pending)
        if self._writer is None or self._writer.done():
            # A task of its own: a caller that goes away must not strand the others' commit.
            self._writer = asyncio.create_task(self._flush_writes(executor))
        result: T = await pending.done
        return result

    async def _flush_writes(self, executor: ThreadPoolExecutor) -> None:
        group: list[_Write] = []
        loop = asyncio.get_running_loop()
        try:
            while self._writes:
                group = self._writes[:MAX_GROUP]
                del self._writes[:MAX_GROUP]
                try:
                    write_all = functools.partial(_write_group, group=group)
                    results = await loop.run_in_executor(executor, self._run, write_all, True)
                except Exception as exc:  # nothing of the group was committed
                    results = [exc] * len(group)
                for write, result in zip(group, results, strict=True):
                    if write.done.done():  # its caller went away; the write stands all the same
                        continue
                    if isinstance(result, Exception):
                        write.done.set_exception(result)
                    else:
                        write.done.set_result(result)
                group = []
        finally:  # cancelled (shutdown): nobody may wait forever
            for write in [*group, *self._writes]:
                if not write.done.done():
                    write.done.cancel()

    def _run(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the SQLite store is closed")
        lock = self._writer_lock if write else None
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with _transaction(conn, write=write):
                    result = fn(conn)
            finally:
                if lock is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        except sqlite3.IntegrityError as exc:
            raise ValueError("the store rejected the write: a constraint was violated") from exc
        except sqlite3.ProgrammingError:
            raise
        except sqlite3.DatabaseError as exc:
            # locked, disk I/O error, disk full, corrupt file: the client may retry later
            _log.debug("sqlite store operation failed: %s", exc)  # the web edge logs the outage once
            raise StoreUnavailable("the hub's store is temporarily unavailable") from exc
        # A cursor finalised on the event loop thread would reset a cached statement while the
        # worker reuses it ("bad parameter or other API misuse"): results must be plain data.
        if isinstance(result, sqlite3.Cursor):
            raise TypeError("a store call must not return a cursor")
        return result

    async def _fetch(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return await self._call(lambda c: c.execute(sql, params).fetchall(), write=False)

    async def _quick_read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a small indexed read on the event loop's own thread, on a connection of its own.

        A hop to the worker thread and back cost more than the read itself on the hot paths
        (routing, polls, push): the future chaining and the GIL handoff, measured ~100 µs on
        the development machine against ~20 µs for the read. WAL readers never wait for the
        writer; should SQLite still answer busy, the read goes to the worker thread instead.
        Only for reads bounded by an index and a limit: this blocks the loop while it runs.
        """
        reader = self._reader
        if reader is not None and not self._closed:
            try:
                with _transaction(reader, write=False):
                    result = fn(reader)
            except (sqlite3.OperationalError, sqlite3.ProgrammingError):
                pass  # busy, another thread, or an I/O problem the worker thread reports properly
            else:
                if isinstance(result, sqlite3.Cursor):
                    raise TypeError("a store call must not return a cursor")
                return result
        return await self._call(fn, write=False)

    async def _quick_fetch(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """One statement: it reads one snapshot on its own, no BEGIN/COMMIT around it needed."""
        reader = self._reader
        if reader is not None and not self._closed:
            try:
                return reader.execute(sql, params).fetchall()
            except (sqlite3.OperationalError, sqlite3.ProgrammingError):
                pass  # busy, another thread, or an I/O problem the worker thread reports properly
        return await self._fetch(sql, params)

    def _open_reader(self) -> None:
        reader = sqlite3.connect(self.path, isolation_level=None)
        try:
            reader.execute("PRAGMA busy_timeout = 0")  # never wait on the event loop
            reader.execute("PRAGMA query_only = ON")
            if self._sibling_processes:
                reader.execute(f"PRAGMA mmap_size = {SIBLING_MMAP_BYTES}")
        except sqlite3.Error:
            reader.close()
            raise
        self._reader = reader

    async def _change(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one write statement; the number of rows it changed."""
        return await self._call(lambda c: c.execute(sql, params).rowcount, write=True)

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only: the file holds receivers' push credentials. SQLite gives the -wal and
        # -shm files the main file's mode.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        if self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o600)
        if self._sibling_processes and self._writer_lock is None:
            # Sibling processes take turns writing through a lock file: flock hands the turn
            # over the moment it is free, where SQLite's busy handler sleeps 1, 2, 5... ms.
            lock_path = self.path.with_name(self.path.name + ".writer")
            self._writer_lock = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_MS)}")
            if self._sibling_processes:
                # Each commit of a sibling empties this connection's page cache; mapped pages
                # are read back without a system call each (measured: about 15 % less hub
                # CPU per SET with two processes; tests/bench/README.md).
                conn.execute(f"PRAGMA mmap_size = {SIBLING_MMAP_BYTES}")
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
            for step in range(version, SCHEMA_VERSION):
                # executescript commits any open transaction first, so the script brings its own.
                conn.executescript(
                    f"BEGIN IMMEDIATE;{_MIGRATIONS[step]}PRAGMA user_version = {step + 1};COMMIT;"
                )
            if self._serving and self._sibling_processes:
                holders = [row[0] for row in conn.execute("SELECT DISTINCT holder FROM leases")]
                gone = [(h,) for h in holders if not holder_alive(h)]
                conn.executemany("DELETE FROM leases WHERE holder = ?", gone)
            elif self._serving:
                conn.execute("DELETE FROM leases")  # held by an earlier run of this process
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._writer_lock is not None:
            os.close(self._writer_lock)
            self._writer_lock = None

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        if self._closed:
            raise RuntimeError("the SQLite store is closed; make a new one to reopen the file")
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
        try:
            self._open_reader()
        except sqlite3.Error as exc:  # every read then takes the worker thread, as before
            _log.warning("sqlite store %s: no read connection for the event loop: %s", self.path, exc)

    async def close(self) -> None:
        """Close the file and stop the worker thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._writer is not None:
            await self._writer  # writes already accepted are committed before the file closes
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
