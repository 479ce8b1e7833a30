"""Trusted upstream issuers and ingest receipts on SQLite (issue #4).

Concurrent ingests share commits like every other write (see ``sqlite_engine``).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence

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


def _ingest_one(conn: sqlite3.Connection, receipt: IngestReceipt, items: Sequence[QueuedSet]) -> bool:
    r = receipt
    if conn.execute(_RECEIPT, (r.iss, r.jti, r.received_at, r.expires_at, r.txn)).rowcount == 0:
        return False  # a duplicate: nothing queued
    insert_queued(conn, items)
    return True


class SQLiteIngest(SQLiteQueue):
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
        rows = await self._quick_fetch("SELECT value FROM counters WHERE name = ?", (_ISSUERS_COUNTER,))
        return int(rows[0][0]) if rows else 0

    # -- ingest receipts ---------------------------------------------------------------------------
    async def was_ingested(self, iss: str, jti: str, *, now: float) -> bool:
        sql = "SELECT 1 FROM ingested WHERE iss = ? AND jti = ? AND expires_at > ?"
        return bool(await self._quick_fetch(sql, (iss, jti, now)))

    async def ingest(self, receipt: IngestReceipt, items: Sequence[QueuedSet]) -> bool:
        # Receipt and re-issued SETs in one savepoint: a crash keeps both or neither.
        return await self._call(functools.partial(_ingest_one, receipt=receipt, items=items), write=True)

    async def forget_ingested(self, before: float) -> int:
        return await self._change("DELETE FROM ingested WHERE expires_at < ?", (before,))
