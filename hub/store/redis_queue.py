"""Per-stream SET queues, push attempts, delivery health and leases on Redis.

Why sorted sets and hashes, not Redis Streams: the queue is not consumed in order. A poll
acknowledges any subset of what it was given, push finishes SETs out of order under
concurrency, and a finished SET must stay findable (by jti or txn) until retention. So a
stream's queue is a sorted set of jtis scored by one global sequence number (order kept,
``ZREM`` of any jti in O(log n), the oldest ``limit`` in one ``ZRANGE``), each SET a hash
that outlives its queue entry as the trace, and its attempts a list. Control SETs are also
in a second sorted set so ``control_only`` reads do not walk the whole queue. Redis
Streams would need a jti -> entry-id map for acks and ``XDEL`` leaves the entry's
history nowhere; consumer groups model one consumer per message, not a per-stream
acknowledgement by a receiver. Delayed push retries need no separate schedule: the
dispatcher reads ``next_attempt_at`` from the queued SET as it does on SQLite.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

from hub.core.health import DeliveryHealth
from hub.core.model import Attempt, DeliveryState, QueuedSet, QueueStats, SetTrace
from hub.store import redis_queue_scripts as queue_lua
from hub.store import redis_scripts as lua
from hub.store.redis_engine import RedisEngine, guarded
from hub.store.redis_keys import member, parse_member

RETENTION_BATCH = 500  # finished SETs forgotten per script run, so Redis never stalls long


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


def enqueue_args(item: QueuedSet) -> list[object]:
    text = (item.stream_id, item.jti, item.set_jwt, item.event_type)
    if not all(isinstance(v, str) for v in text) or not (item.txn is None or isinstance(item.txn, str)):
        raise ValueError(f"the store rejected the write: SET {item.jti!r} has a missing or non-text field")
    return [
        item.stream_id,
        item.jti,
        member(item.stream_id, item.jti),
        item.set_jwt,
        item.event_type,
        item.txn or "",
        "0" if item.txn is None else "1",
        "1" if item.control else "0",
        number(item.queued_at),
    ]


class RedisQueue(RedisEngine):
    # -- per-stream queues ---------------------------------------------------------------------
    @guarded
    async def enqueue(self, items: Sequence[QueuedSet]) -> None:
        # Checked before anything is sent: a bad item must not leave half a batch behind.
        args = [value for item in items for value in enqueue_args(item)]
        if args:
            await self._run(queue_lua.ENQUEUE, *args)

    @guarded
    async def pending(self, stream_id: str, limit: int, *, control_only: bool = False) -> list[QueuedSet]:
        flat = await self._run(queue_lua.PENDING, stream_id, max(limit, 0), "1" if control_only else "0")
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
        logged = [value for a in attempts for value in (a.stream_id, a.jti, _attempt_record(a))]
        if not ids and not logged:
            return 0
        bump = "1" if attempts else "0"
        args = (stream_id, state.value, number(at), bump, len(ids), *ids, *logged)
        return int(await self._run(queue_lua.COMPLETE, *args))

    @guarded
    async def reschedule_pending(self, stream_id: str, *, next_attempt_at: float) -> int:
        return int(await self._run(queue_lua.RESCHEDULE_PENDING, stream_id, number(next_attempt_at)))

    @guarded
    async def purge_pending(self, stream_id: str, *, at: float, keep_control: bool = True) -> int:
        keep = "1" if keep_control else "0"
        return int(await self._run(queue_lua.PURGE_PENDING, stream_id, number(at), keep))

    @guarded
    async def streams_with_pending(self) -> list[str]:
        return sorted(cast(set[str], await self.client.smembers(self.keys.pending_streams)))

    @guarded
    async def queue_stats(self, stream_id: str) -> QueueStats:
        # The head of the queue is the oldest SET in arrival order (one sequence for all
        # replicas), so no clock of any replica decides what "oldest" means.
        depth, oldest = await self._run(queue_lua.QUEUE_STATS, stream_id)
        return QueueStats(int(depth), None if oldest is None else float(oldest))

    @guarded
    async def delete_finished(self, before: float) -> int:
        total = 0
        while True:
            done = int(await self._run(queue_lua.DELETE_FINISHED, number(before), RETENTION_BATCH))
            total += done
            if done < RETENTION_BATCH:
                return total

    # -- push delivery -------------------------------------------------------------------------
    @guarded
    async def record_attempt(
        self, attempt: Attempt, *, next_attempt_at: float, last_error: str | None
    ) -> None:
        a = attempt
        has_error = "0" if last_error is None else "1"
        await self._run(
            queue_lua.RECORD_ATTEMPT,
            a.stream_id,
            a.jti,
            number(next_attempt_at),
            has_error,
            last_error or "",
            _attempt_record(a),
        )

    @guarded
    async def trace(self, ident: str) -> list[SetTrace]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zrange(self.keys.trace_jti(ident), 0, -1, withscores=True)
            pipe.zrange(self.keys.trace_txn(ident), 0, -1, withscores=True)
            by_jti, by_txn = await pipe.execute()
        found: dict[tuple[str, str], float] = {(sid, ident): seq for sid, seq in by_jti}
        found.update({parse_member(m): seq for m, seq in by_txn})
        ordered = sorted(found, key=found.__getitem__)
        async with self.client.pipeline(transaction=False) as pipe:
            for sid, jti in ordered:
                pipe.hgetall(self.keys.set(sid, jti))
                pipe.lrange(self.keys.attempts(sid, jti), 0, -1)
            replies = await pipe.execute()
        out = []
        for (sid, jti), fields, attempts in zip(ordered, replies[::2], replies[1::2], strict=True):
            if fields:  # forgotten between the two reads
                out.append(_trace(sid, jti, fields, attempts))
        return out

    @guarded
    async def get_health(self, stream_id: str) -> DeliveryHealth:
        text = await self.client.get(self.keys.health(stream_id))
        return DeliveryHealth() if text is None else DeliveryHealth.from_record(json.loads(text))

    @guarded
    async def save_health(self, stream_id: str, health: DeliveryHealth) -> None:
        await self._run(lua.SAVE_HEALTH, stream_id, dumps(health.to_record()))

    @guarded
    async def acquire_lease(self, name: str, holder: str, *, now: float, ttl: float) -> bool:
        # The caller's clock decides expiry (as on SQLite); Redis's own expiry only cleans up.
        ttl_ms = max(1, math.ceil(ttl * 1000))
        args = (holder, number(now), number(now + ttl), ttl_ms)
        return bool(await self._script(lua.ACQUIRE_LEASE, [self.keys.lease(name)], args))

    @guarded
    async def release_lease(self, name: str, holder: str) -> None:
        await self._script(lua.RELEASE_LEASE, [self.keys.lease(name)], [holder])


def _trace(stream_id: str, jti: str, fields: dict[str, Any], attempts: list[str]) -> SetTrace:
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
    )
