"""Per-stream SET queues, push attempts, delivery health and leases on SQLite."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from hub.core.health import DeliveryHealth
from hub.core.model import Attempt, DeliveryState, QueuedSet, QueueStats, RemediationReceipt, SetTrace
from hub.store.sqlite_engine import SQLiteEngine, dumps, in_batches

_QUEUE_COLUMNS = "stream_id, jti, set_jwt, event_type, txn, control, queued_at, attempts, next_attempt_at"
# Items for a stream deleted meanwhile are dropped (no orphans); a jti already queued on
# the stream keeps its place. Only that conflict is ignored: NOT NULL still fails the batch.
_ENQUEUE = """
INSERT INTO queue (stream_id, jti, set_jwt, event_type, txn, control, queued_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM streams WHERE stream_id = ?1)
ON CONFLICT (stream_id, jti) DO NOTHING
"""
_PENDING = (
    f"SELECT {_QUEUE_COLUMNS} FROM queue "  # noqa: S608 - a constant column list, no data
    "WHERE stream_id = ? AND state = 'pending' {control} ORDER BY seq LIMIT ?"
)
_TRACE = (
    "SELECT seq, stream_id, jti, txn, event_type, state, queued_at, done_at, last_error FROM queue "
    "WHERE jti = ?1 OR txn = ?1 ORDER BY seq"
)
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (stream_id, jti, at, outcome, status, error, latency_ms) "
    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE EXISTS (SELECT 1 FROM queue WHERE stream_id = ?1 AND jti = ?2)"
)


def _queued(row: Sequence[Any]) -> QueuedSet:
    stream_id, jti, set_jwt, event_type, txn, control, queued_at, attempts, next_at = row
    return QueuedSet(stream_id, jti, set_jwt, event_type, txn, bool(control), queued_at, attempts, next_at)


def insert_queued(conn: sqlite3.Connection, items: Sequence[QueuedSet]) -> None:
    """Queue ``items`` inside the caller's transaction (see ``_ENQUEUE`` for conflicts)."""
    rows = [(i.stream_id, i.jti, i.set_jwt, i.event_type, i.txn, int(i.control), i.queued_at) for i in items]
    conn.executemany(_ENQUEUE, rows)


class SQLiteQueue(SQLiteEngine):
    # -- per-stream queues ---------------------------------------------------------------------
    async def enqueue(self, items: Sequence[QueuedSet]) -> None:
        await self._call(lambda c: insert_queued(c, items), write=True)

    async def pending(self, stream_id: str, limit: int, *, control_only: bool = False) -> list[QueuedSet]:
        sql = _PENDING.format(control="AND control = 1" if control_only else "")
        # SQLite reads a negative LIMIT as "no limit"; the contract reads it as none.
        return [_queued(row) for row in await self._quick_fetch(sql, (stream_id, max(limit, 0)))]

    async def count_pending(self, stream_id: str, *, control_only: bool = False) -> int:
        sql = "SELECT count(*) FROM queue WHERE stream_id = ? AND state = 'pending'"
        if control_only:
            sql += " AND control = 1"
        return int((await self._fetch(sql, (stream_id,)))[0][0])

    async def complete(
        self,
        stream_id: str,
        jtis: Iterable[str],
        *,
        at: float,
        state: DeliveryState = DeliveryState.DELIVERED,
        attempts: Sequence[Attempt] = (),
    ) -> int:
        ids = list(jtis)
        bump = ", attempts = attempts + 1" if attempts else ""
        sql = (
            f"UPDATE queue SET state = ?, done_at = ?{bump} "  # noqa: S608 - constant fragments only
            "WHERE stream_id = ? AND state = 'pending' AND jti IN ({marks})"
        )
        rows = [(a.stream_id, a.jti, a.at, a.outcome, a.status, a.error, a.latency_ms) for a in attempts]

        def tx(conn: sqlite3.Connection) -> int:
            changed: int = sum(cur.rowcount for cur in in_batches(conn, sql, ids, state.value, at, stream_id))
            conn.executemany(_INSERT_ATTEMPT, rows)
            return changed

        return await self._call(tx, write=True)

    async def reschedule_pending(self, stream_id: str, *, next_attempt_at: float) -> int:
        sql = "UPDATE queue SET next_attempt_at = ? WHERE stream_id = ? AND state = 'pending'"
        return await self._change(sql, (next_attempt_at, stream_id))

    async def purge_pending(self, stream_id: str, *, at: float, keep_control: bool = True) -> int:
        sql = "UPDATE queue SET state = 'dropped', done_at = ? WHERE stream_id = ? AND state = 'pending'"
        if keep_control:
            sql += " AND control = 0"
        return await self._change(sql, (at, stream_id))

    async def streams_with_pending(self) -> list[str]:
        rows = await self._fetch("SELECT DISTINCT stream_id FROM queue WHERE state = 'pending'")
        return sorted(str(r[0]) for r in rows)

    async def queue_stats(self, stream_id: str) -> QueueStats:
        sql = "SELECT count(*), min(queued_at) FROM queue WHERE stream_id = ? AND state = 'pending'"
        depth, oldest = (await self._fetch(sql, (stream_id,)))[0]
        return QueueStats(int(depth), oldest)

    async def delete_finished(self, before: float) -> int:
        # Attempts go with their SET (ON DELETE CASCADE).
        return await self._change("DELETE FROM queue WHERE state != 'pending' AND done_at < ?", (before,))

    # -- push delivery -------------------------------------------------------------------------
    async def record_attempt(
        self, attempt: Attempt, *, next_attempt_at: float, last_error: str | None
    ) -> None:
        a = attempt

        def tx(conn: sqlite3.Connection) -> None:
            exists = conn.execute(
                "UPDATE queue SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE stream_id = ? AND jti = ?",
                (next_attempt_at, last_error, a.stream_id, a.jti),
            ).rowcount
            if exists:  # the stream may have been deleted while the attempt was in flight
                conn.execute(
                    _INSERT_ATTEMPT, (a.stream_id, a.jti, a.at, a.outcome, a.status, a.error, a.latency_ms)
                )

        await self._call(tx, write=True)

    async def trace(self, ident: str) -> list[SetTrace]:
        def tx(conn: sqlite3.Connection) -> list[SetTrace]:
            out = []
            for row in conn.execute(_TRACE, (ident,)).fetchall():
                seq, stream_id, jti, txn, event_type, state, queued_at, done_at, last_error = row
                attempts = tuple(
                    Attempt(stream_id, jti, *rest)
                    for rest in conn.execute(
                        "SELECT at, outcome, status, error, latency_ms FROM attempts "
                        "WHERE stream_id = ? AND jti = ? ORDER BY id",
                        (stream_id, jti),
                    ).fetchall()
                )
                out.append(
                    SetTrace(
                        stream_id,
                        jti,
                        txn,
                        event_type,
                        DeliveryState(state),
                        queued_at,
                        done_at,
                        attempts,
                        last_error,
                        tuple(
                            RemediationReceipt(stream_id, jti, *rest)
                            for rest in conn.execute(
                                "SELECT action, count, at, received_at FROM remediation "
                                "WHERE seq = ? ORDER BY id",
                                (seq,),
                            ).fetchall()
                        ),
                    )
                )
            return out

        return await self._call(tx, write=False)

    async def record_receipts(self, stream_id: str, receipts: Sequence[RemediationReceipt]) -> int:
        rows = [(r.action, r.count, r.at, r.received_at, stream_id, r.jti) for r in receipts]

        def tx(conn: sqlite3.Connection) -> int:
            kept = 0
            for row in rows:
                kept += conn.execute(
                    "INSERT INTO remediation (seq, action, count, at, received_at) "
                    "SELECT seq, ?1, ?2, ?3, ?4 FROM queue WHERE stream_id = ?5 AND jti = ?6",
                    row,
                ).rowcount
            return kept

        return await self._call(tx, write=True)

    async def get_health(self, stream_id: str) -> DeliveryHealth:
        rows = await self._quick_fetch("SELECT record FROM health WHERE stream_id = ?", (stream_id,))
        return DeliveryHealth.from_record(json.loads(rows[0][0])) if rows else DeliveryHealth()

    async def save_health(self, stream_id: str, health: DeliveryHealth) -> None:
        await self._change(
            "INSERT INTO health (stream_id, record) SELECT ?1, ?2 "
            "WHERE EXISTS (SELECT 1 FROM streams WHERE stream_id = ?1) "
            "ON CONFLICT (stream_id) DO UPDATE SET record = excluded.record",
            (stream_id, dumps(health.to_record())),
        )

    async def acquire_lease(self, name: str, holder: str, *, now: float, ttl: float) -> bool:
        sql = (
            "INSERT INTO leases (name, holder, expires_at) VALUES (?1, ?2, ?3) "
            "ON CONFLICT (name) DO UPDATE SET holder = ?2, expires_at = ?3 "
            "WHERE leases.holder = ?2 OR leases.expires_at <= ?4"
        )
        return await self._change(sql, (name, holder, now + ttl, now)) > 0

    async def release_lease(self, name: str, holder: str) -> None:
        await self._change("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
