"""Trusted upstream issuers and ingest receipts on SQLite (issue #4).

Ingest commits in groups: with ``synchronous=FULL`` every commit waits for an ``fsync``
(about 1.6 ms on the development machine, so at most ~600 commits/s), and an identity
provider pushing a burst would be held to that. Calls to :meth:`SQLiteIngest.ingest` that
arrive while a commit is in progress wait and then go in one transaction together, each in
its own savepoint; every caller still returns only after the commit that holds its SET.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from hub.core.issuers import TrustedIssuer
from hub.core.model import IngestReceipt, QueuedSet
from hub.store.sqlite_engine import dumps
from hub.store.sqlite_queue import SQLiteQueue, insert_queued

_ISSUERS_COUNTER = "issuers_version"
_BUMP = (
    "INSERT INTO counters (name, value) VALUES (?, 1) "
    "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1"
)
# A receipt that expired counts as absent: the upsert takes its place, and reports a change.
_RECEIPT = (
    "INSERT INTO ingested (iss, jti, received_at, expires_at, txn) VALUES (?1, ?2, ?3, ?4, ?5) "
    "ON CONFLICT (iss, jti) DO UPDATE SET received_at = ?3, expires_at = ?4, txn = ?5 "
    "WHERE ingested.expires_at <= ?3"
)


_Waiting = tuple[IngestReceipt, Sequence[QueuedSet], "asyncio.Future[bool]"]
MAX_GROUP = 256  # ingests per transaction: bounds how long one commit holds the writer


def _ingest_one(conn: sqlite3.Connection, receipt: IngestReceipt, items: Sequence[QueuedSet]) -> bool:
    r = receipt
    if conn.execute(_RECEIPT, (r.iss, r.jti, r.received_at, r.expires_at, r.txn)).rowcount == 0:
        return False  # a duplicate: nothing queued
    insert_queued(conn, items)
    return True


def _ingest_group(conn: sqlite3.Connection, group: Sequence[_Waiting]) -> list[bool | Exception]:
    """Each ingest of ``group`` in its own savepoint, so a bad one fails alone."""
    results: list[bool | Exception] = []
    for receipt, items, _ in group:
        conn.execute("SAVEPOINT ingest_one")
        try:
            results.append(_ingest_one(conn, receipt, items))
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO ingest_one")
            results.append(ValueError("the store rejected the write: a constraint was violated"))
        conn.execute("RELEASE ingest_one")
    return results


class SQLiteIngest(SQLiteQueue):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ingest_waiting: list[_Waiting] = []
        self._ingest_flusher: asyncio.Task[None] | None = None

    # -- trusted issuers -------------------------------------------------------------------------
    async def put_issuer(self, issuer: TrustedIssuer) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO issuers (iss, record) VALUES (?, ?) "
                "ON CONFLICT (iss) DO UPDATE SET record = excluded.record",
                (issuer.iss, dumps(issuer.to_record())),
            )
            conn.execute(_BUMP, (_ISSUERS_COUNTER,))

        await self._call(tx, write=True)

    async def get_issuer(self, iss: str) -> TrustedIssuer | None:
        rows = await self._fetch("SELECT record FROM issuers WHERE iss = ?", (iss,))
        return TrustedIssuer.from_record(json.loads(rows[0][0])) if rows else None

    async def list_issuers(self) -> list[TrustedIssuer]:
        rows = await self._fetch("SELECT record FROM issuers ORDER BY iss")
        return [TrustedIssuer.from_record(json.loads(row[0])) for row in rows]

    async def remove_issuer(self, iss: str) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            removed = conn.execute("DELETE FROM issuers WHERE iss = ?", (iss,)).rowcount > 0
            if removed:
                conn.execute(_BUMP, (_ISSUERS_COUNTER,))
            return removed

        return await self._call(tx, write=True)

    async def issuers_version(self) -> int:
        rows = await self._fetch("SELECT value FROM counters WHERE name = ?", (_ISSUERS_COUNTER,))
        return int(rows[0][0]) if rows else 0

    # -- ingest receipts ---------------------------------------------------------------------------
    async def was_ingested(self, iss: str, jti: str, *, now: float) -> bool:
        sql = "SELECT 1 FROM ingested WHERE iss = ? AND jti = ? AND expires_at > ?"
        return bool(await self._fetch(sql, (iss, jti, now)))

    async def ingest(self, receipt: IngestReceipt, items: Sequence[QueuedSet]) -> bool:
        self._ensure_open()
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._ingest_waiting.append((receipt, items, done))
        if self._ingest_flusher is None or self._ingest_flusher.done():
            # A task of its own: a caller that goes away must not strand the others' commit.
            self._ingest_flusher = asyncio.create_task(self._flush_ingests())
        return await done

    async def _flush_ingests(self) -> None:
        group: list[_Waiting] = []
        try:
            while self._ingest_waiting:
                group = self._ingest_waiting[:MAX_GROUP]
                del self._ingest_waiting[:MAX_GROUP]
                try:
                    results = await self._call(functools.partial(_ingest_group, group=group), write=True)
                except Exception as exc:  # nothing of the group was committed
                    results = [exc] * len(group)
                for (_, _, done), result in zip(group, results, strict=True):
                    if done.done():  # its caller went away; the SET is stored all the same
                        continue
                    if isinstance(result, Exception):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
        finally:  # cancelled (shutdown): nobody may wait forever
            for _, _, done in [*group, *self._ingest_waiting]:
                if not done.done():
                    done.cancel()

    async def forget_ingested(self, before: float) -> int:
        return await self._change("DELETE FROM ingested WHERE expires_at < ?", (before,))
