"""Per-stream SET queues, push attempts, delivery health and leases on Redis.

Why sorted sets and hashes, not Redis Streams: the queue is not consumed in order. A poll
acknowledges any subset of what it was given, push finishes SETs out of order under
concurrency, and a finished SET must stay findable (by jti or txn) until retention. So a
stream's queue is a sorted set of jtis scored by the stream's own sequence counter (order
kept, ``ZREM`` of any jti in O(log n), the oldest ``limit`` in one ``ZRANGE``), each SET a
hash that outlives its queue entry as the trace, and its attempts a list. Control SETs
are also in a second sorted set so ``control_only`` reads do not walk the whole queue.
Redis Streams would need a jti -> entry-id map for acks and ``XDEL`` leaves the entry's
history nowhere; consumer groups model one consumer per message, not a per-stream
acknowledgement by a receiver. Delayed push retries need no separate schedule: the
dispatcher reads ``next_attempt_at`` from the queued SET as it does on SQLite.

There is no hub-wide sequence (it would put every enqueue on one cluster node): order
within a stream is the stream's counter; across streams (a txn's trace) it is the queued
time, then the order in which one process enqueued them (``order``: a nanosecond stamp
and the SET's place in its batch), then the stream's counter.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

from hub.core.health import DeliveryHealth
from hub.core.model import Attempt, DeliveryState, QueuedSet, QueueStats, RemediationReceipt, SetTrace
from hub.store import redis_queue_scripts as queue_lua
from hub.store import redis_scripts as lua
from hub.store.redis_engine import Command, RedisEngine, ScriptCall, guarded
from hub.store.redis_keys import member, parse_member

READ_BATCH = 1000  # keys per pipeline round trip
RECEIPTS_KEPT_PER_SET = 100  # a receiver reporting in a loop cannot grow one SET's trace

# One SET as the enqueue script takes it, after its stream id: jti, member, jwt, type, txn,
# has_txn, control, queued_at, order. Ingest keeps these rows in its receipt to replay them.
Row = list[str]


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def number(value: float) -> str:
    """A float as Redis stores it: ``repr`` round-trips exactly."""
    return repr(float(value))


def _attempt_record(a: Attempt) -> str:
    return dumps([a.at, a.outcome, a.status, a.error, a.latency_ms])


def _attempt(stream_id: str, jti: str, text: str) -> Attempt:
    at, outcome, status, error, latency_ms = json.loads(text)
    return Attempt(stream_id, jti, at, outcome, status, error, latency_ms)


class RedisQueue(RedisEngine):
    _last_stamp = 0

    def _stamp(self) -> int:
        """Nanoseconds, strictly increasing within this process: orders its enqueue batches."""
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        return self._last_stamp

    def rows(self, items: Sequence[QueuedSet]) -> list[tuple[str, Row]]:
        """(stream id, row) per item; ValueError before anything is sent if one is malformed."""
        stamp = self._stamp()
        out = []
        for index, item in enumerate(items):
            text = (item.stream_id, item.jti, item.set_jwt, item.event_type)
            txn_ok = item.txn is None or isinstance(item.txn, str)
            if not all(isinstance(v, str) for v in text) or not txn_ok:
                raise ValueError(
                    f"the store rejected the write: SET {item.jti!r} has a missing or non-text field"
                )
            row = [
                item.jti,
                member(item.stream_id, item.jti),
                item.set_jwt,
                item.event_type,
                item.txn or "",
                "0" if item.txn is None else "1",
                "1" if item.control else "0",
                number(item.queued_at),
                f"{stamp:020d}:{index:06d}",
            ]
            out.append((item.stream_id, row))
        return out

    # -- per-stream queues ---------------------------------------------------------------------
    @guarded
    async def enqueue(self, items: Sequence[QueuedSet]) -> None:
        await self.enqueue_rows(self.rows(items))

    async def enqueue_rows(self, rows: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Queue rows on their streams, each stream in one script (idempotent by jti).

        The shared entries that lead to them (pending-streams, the trace index) are added
        first, so a crash leaves them dangling rather than missing; pending-streams is
        added again afterwards because a reader may have found the queue empty and dropped
        it in between (``streams_with_pending``). On one Redis the three stages are one
        pipeline, so one round trip. Entries for streams that turned out to be gone are
        removed at the end: a deleted stream id never comes back.
        """
        if not rows:
            return
        by_stream: dict[str, list[Sequence[str]]] = {}
        for stream_id, row in rows:
            by_stream.setdefault(stream_id, []).append(row)
        calls: list[ScriptCall] = [
            (queue_lua.ENQUEUE, self._enqueue_keys(sid), [self.keys.stream_slot(sid), *_flat(stream_rows)])
            for sid, stream_rows in by_stream.items()
        ]
        again = Command(("SADD", self.keys.pending_streams, *by_stream))
        results = await self._bracketed(self._index_calls(list(by_stream), rows), calls, [again])
        gone = [sid for sid, n in zip(by_stream, results, strict=True) if int(n) < 0]
        if gone:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.srem(self.keys.pending_streams, *gone)
                for stream_id in gone:
                    for row in by_stream[stream_id]:
                        jti, filed, txn, has_txn = row[0], row[1], row[4], row[5] == "1"
                        pipe.zrem(self.keys.trace_jti(jti), stream_id)
                        if has_txn:
                            pipe.zrem(self.keys.trace_txn(txn), filed)
                await pipe.execute()

    def _enqueue_keys(self, stream_id: str) -> list[str]:
        k = self.keys
        sid = stream_id
        return [k.stream(sid), k.stream_seq(sid), k.queue(sid), k.control(sid), k.sets(sid)]

    def _index_calls(
        self, stream_ids: list[str], rows: Sequence[tuple[str, Sequence[str]]]
    ) -> list[ScriptCall]:
        """INDEX_QUEUED calls (all keys in ``{hub}``) for pending-streams and the trace
        entries of ``rows``, a bounded number of keys each."""
        calls: list[ScriptCall] = []
        for start in range(0, len(rows), READ_BATCH):
            keys, entries = [self.keys.pending_streams], []
            for stream_id, row in rows[start : start + READ_BATCH]:
                jti, filed, txn, has_txn, queued_at = row[0], row[1], row[4], row[5] == "1", row[7]
                keys.append(self.keys.trace_jti(jti))
                entries += [stream_id, queued_at]
                if has_txn:
                    keys.append(self.keys.trace_txn(txn))
                    entries += [filed, queued_at]
            ids = stream_ids if start == 0 else []
            calls.append((queue_lua.INDEX_QUEUED, keys, [len(ids), *ids, *entries]))
        return calls

    @guarded
    async def pending(self, stream_id: str, limit: int, *, control_only: bool = False) -> list[QueuedSet]:
        key = self.keys.control(stream_id) if control_only else self.keys.queue(stream_id)
        flat = await self._script(queue_lua.PENDING, [key], [self.keys.stream_slot(stream_id), max(limit, 0)])
        out = []
        for i in range(0, len(flat), 8):
            jti, jwt, event_type, txn, control, queued_at, attempts, next_at = flat[i : i + 8]
            if jwt is None:  # cannot happen inside one script; kept as a guard against drift
                continue
            out.append(
                QueuedSet(
                    stream_id,
                    jti,
                    jwt,
                    event_type,
                    txn,
                    control == "1",
                    float(queued_at),
                    int(attempts),
                    float(next_at),
                )
            )
        return out

    @guarded
    async def count_pending(self, stream_id: str, *, control_only: bool = False) -> int:
        key = self.keys.control(stream_id) if control_only else self.keys.queue(stream_id)
        return int(await self.client.zcard(key))

    def _finish_keys(self, stream_id: str) -> list[str]:
        return [self.keys.queue(stream_id), self.keys.control(stream_id), self.keys.finished(stream_id)]

    @guarded
    async def complete(
        self,
        stream_id: str,
        jtis: Iterable[str],
        *,
        at: float,
        state: DeliveryState = DeliveryState.DELIVERED,
        attempts: Sequence[Attempt] = (),
    ) -> int:
        ids = list(dict.fromkeys(jtis))
        # One script, one slot: attempts belong to this stream's SETs (others are dropped,
        # as attempts of SETs the store does not have always were).
        logged = [v for a in attempts if a.stream_id == stream_id for v in (a.jti, _attempt_record(a))]
        if not ids and not logged:
            return 0
        bump = "1" if attempts else "0"
        args = (self.keys.stream_slot(stream_id), state.value, number(at), bump, len(ids), *ids, *logged)
        # The stream stays in pending-streams even if its queue is now empty: the reader
        # drops it (streams_with_pending), so finishing costs no second round trip.
        return int(await self._script(queue_lua.COMPLETE, self._finish_keys(stream_id), args))

    @guarded
    async def reschedule_pending(self, stream_id: str, *, next_attempt_at: float) -> int:
        args = (self.keys.stream_slot(stream_id), number(next_attempt_at))
        return int(await self._script(queue_lua.RESCHEDULE_PENDING, [self.keys.queue(stream_id)], args))

    @guarded
    async def purge_pending(self, stream_id: str, *, at: float, keep_control: bool = True) -> int:
        args = (self.keys.stream_slot(stream_id), number(at), "1" if keep_control else "0")
        return int(await self._script(queue_lua.PURGE_PENDING, self._finish_keys(stream_id), args))

    @guarded
    async def streams_with_pending(self) -> list[str]:
        # pending-streams is a superset: verify each candidate's queue, and drop the empty
        # ones with remove-then-recheck, so an enqueue racing the drop is put back.
        candidates = sorted(cast(set[str], await self.client.smembers(self.keys.pending_streams)))
        depths = await self._queue_depths(candidates)
        busy = [sid for sid, depth in zip(candidates, depths, strict=True) if depth]
        empty = [sid for sid, depth in zip(candidates, depths, strict=True) if not depth]
        if empty:
            await self.client.srem(self.keys.pending_streams, *empty)
            depths = await self._queue_depths(empty)
            refilled = [sid for sid, depth in zip(empty, depths, strict=True) if depth]
            if refilled:
                await self.client.sadd(self.keys.pending_streams, *refilled)
                busy = sorted(busy + refilled)
        return busy

    async def _queue_depths(self, stream_ids: Sequence[str]) -> list[int]:
        out: list[int] = []
        for start in range(0, len(stream_ids), READ_BATCH):
            async with self.client.pipeline(transaction=False) as pipe:
                for stream_id in stream_ids[start : start + READ_BATCH]:
                    pipe.zcard(self.keys.queue(stream_id))
                out.extend(int(n) for n in await pipe.execute())
        return out

    @guarded
    async def queue_stats(self, stream_id: str) -> QueueStats:
        # The head of the queue is the oldest SET in arrival order (the stream's own
        # counter), so no clock of any replica decides what "oldest" means.
        keys, args = [self.keys.queue(stream_id)], [self.keys.stream_slot(stream_id)]
        depth, oldest = await self._script(queue_lua.QUEUE_STATS, keys, args)
        return QueueStats(int(depth), None if oldest is None else float(oldest))

    # -- push delivery -------------------------------------------------------------------------
    @guarded
    async def record_attempt(
        self, attempt: Attempt, *, next_attempt_at: float, last_error: str | None
    ) -> None:
        a = attempt
        keys = [self.keys.set(a.stream_id, a.jti), self.keys.attempts(a.stream_id, a.jti)]
        has_error = "0" if last_error is None else "1"
        args = (number(next_attempt_at), has_error, last_error or "", _attempt_record(a))
        await self._script(queue_lua.RECORD_ATTEMPT, keys, args)

    @guarded
    async def trace(self, ident: str) -> list[SetTrace]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zrange(self.keys.trace_jti(ident), 0, -1)
            pipe.zrange(self.keys.trace_txn(ident), 0, -1)
            by_jti, by_txn = await pipe.execute()
        # Both indexes are supersets: a candidate counts only if its SET exists (and, found
        # by txn, still carries that txn); dangling ones are skipped.
        wanted: dict[tuple[str, str], bool] = {(sid, ident): False for sid in by_jti}
        for filed in by_txn:
            wanted.setdefault(parse_member(filed), True)
        candidates = list(wanted)
        found = []
        for start in range(0, len(candidates), READ_BATCH):
            batch = candidates[start : start + READ_BATCH]
            async with self.client.pipeline(transaction=False) as pipe:
                for sid, jti in batch:
                    pipe.hgetall(self.keys.set(sid, jti))
                    pipe.lrange(self.keys.attempts(sid, jti), 0, -1)
                    pipe.lrange(self.keys.remediation(sid, jti), 0, -1)
                replies = await pipe.execute()
            for (sid, jti), fields, attempts, receipts in zip(
                batch, replies[::3], replies[1::3], replies[2::3], strict=True
            ):
                by_txn_only = wanted[sid, jti]
                if fields and not (by_txn_only and fields.get("txn") != ident):
                    found.append((_order(fields), _trace(sid, jti, fields, attempts, receipts)))
        return [trace for _, trace in sorted(found, key=lambda pair: pair[0])]

    @guarded
    async def record_receipts(self, stream_id: str, receipts: Sequence[RemediationReceipt]) -> int:
        if not receipts:
            return 0
        pairs = [v for r in receipts for v in (r.jti, dumps([r.action, r.count, r.at, r.received_at]))]
        args = [self.keys.stream_slot(stream_id), RECEIPTS_KEPT_PER_SET, *pairs]
        return int(await self._script(queue_lua.RECORD_RECEIPTS, [self.keys.stream(stream_id)], args))

    @guarded
    async def get_health(self, stream_id: str) -> DeliveryHealth:
        text = await self.client.get(self.keys.health(stream_id))
        return DeliveryHealth() if text is None else DeliveryHealth.from_record(json.loads(text))

    @guarded
    async def save_health(self, stream_id: str, health: DeliveryHealth) -> None:
        keys = [self.keys.stream(stream_id), self.keys.health(stream_id)]
        await self._script(lua.SAVE_HEALTH, keys, [dumps(health.to_record())])

    @guarded
    async def acquire_lease(self, name: str, holder: str, *, now: float, ttl: float) -> bool:
        # The caller's clock decides expiry (as on SQLite); Redis's own expiry only cleans up.
        ttl_ms = max(1, math.ceil(ttl * 1000))
        args = (holder, number(now), number(now + ttl), ttl_ms)
        return bool(await self._script(lua.ACQUIRE_LEASE, [self.keys.lease(name)], args))

    @guarded
    async def release_lease(self, name: str, holder: str) -> None:
        await self._script(lua.RELEASE_LEASE, [self.keys.lease(name)], [holder])


def _flat(rows: Iterable[Sequence[str]]) -> list[str]:
    return [value for row in rows for value in row]


def _order(fields: dict[str, Any]) -> tuple[float, str, int]:
    return float(fields["queued_at"]), fields.get("order", ""), int(fields.get("seq", 0))


def _trace(
    stream_id: str, jti: str, fields: dict[str, Any], attempts: list[str], receipts: list[str]
) -> SetTrace:
    done_at = fields.get("done_at")
    return SetTrace(
        stream_id=stream_id,
        jti=jti,
        txn=fields.get("txn"),
        event_type=fields["type"],
        state=DeliveryState(fields["state"]),
        queued_at=float(fields["queued_at"]),
        done_at=None if done_at is None else float(done_at),
        attempts=tuple(_attempt(stream_id, jti, text) for text in attempts),
        last_error=fields.get("last_error"),
        receipts=tuple(RemediationReceipt(stream_id, jti, *json.loads(text)) for text in receipts),
    )
