"""Retention on Redis: forgetting finished SETs stream by stream, and old ingest receipts.

Finished SETs are indexed per stream (``{s:<sid>}:finished``, by done_at), so retention
walks the stream registry and trims each stream in its own slot, a bounded batch per
script run, so Redis never stalls long and no script crosses slots. The walk reads every
stream anyway, so it also repairs the shared indexes from the streams' slots
(``redis_keys`` explains why they can only ever dangle, and the one entry a crash could
lose).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from hub.store import redis_queue_scripts as queue_lua
from hub.store.redis_engine import ScriptCall, guarded
from hub.store.redis_queue import RedisQueue, number

RETENTION_BATCH = 500  # finished SETs forgotten per script run
STREAM_BATCH = 100  # streams trimmed per round of concurrent scripts
RECEIPT_BATCH = 500  # receipts forgotten per round


class RedisRetention(RedisQueue):
    @guarded
    async def delete_finished(self, before: float) -> int:
        total, start = 0, 0
        while True:
            # By rank: a stream created meanwhile may shift one past this walk; the next
            # run (an hour later) trims it.
            page = cast(
                list[tuple[str, float]],
                await self.client.zrange(self.keys.streams, start, start + STREAM_BATCH - 1, withscores=True),
            )
            if not page:
                return total
            total += await self._trim_streams(page, before)
            start += len(page)

    async def _trim_streams(self, page: Sequence[tuple[str, float]], before: float) -> int:
        total, k = 0, self.keys
        todo = list(page)
        while todo:
            calls: list[ScriptCall] = [
                (
                    queue_lua.TRIM_FINISHED,
                    [k.stream(sid), k.finished(sid), k.sets(sid), k.queue(sid)],
                    [self.keys.stream_slot(sid), number(before), RETENTION_BATCH],
                )
                for sid, _ in todo
            ]
            replies = await self._scripts_each(calls)
            again = []
            async with self.client.pipeline(transaction=True) as pipe:
                for (sid, created_at), reply in zip(todo, replies, strict=True):
                    exists, depth, forgotten = int(reply[0]), int(reply[1]), reply[2:]
                    for i in range(0, len(forgotten), 3):
                        jti, txn, filed = forgotten[i : i + 3]
                        # After the SET is gone: the trace index stays a superset.
                        pipe.zrem(self.keys.trace_jti(jti), sid)
                        if txn:
                            pipe.zrem(self.keys.trace_txn(txn), filed)
                    if depth:  # repair: a crash may have lost this one entry (redis_keys)
                        pipe.sadd(self.keys.pending_streams, sid)
                    if not exists and created_at < before:
                        # A registry entry left by a crash mid-create or mid-delete; one of a
                        # create in flight is newer than any retention cut-off.
                        pipe.zrem(self.keys.streams, sid)
                        pipe.zrem(self.keys.all_subjects, sid)
                    total += len(forgotten) // 3
                    if len(forgotten) // 3 >= RETENTION_BATCH:
                        again.append((sid, created_at))
                await pipe.execute()
            todo = again
        return total

    @guarded
    async def forget_ingested(self, before: float) -> int:
        total = 0
        while True:
            members = cast(
                list[str],
                await self.client.zrangebyscore(
                    self.keys.receipts, "-inf", f"({number(before)}", start=0, num=RECEIPT_BATCH
                ),
            )
            if not members:
                return total
            # The receipt first, then its index entry: the index stays a superset.
            await self._scripts_each(
                [(queue_lua.FORGET_RECEIPT, [self.keys.receipt(m)], [number(before)]) for m in members]
            )
            removed = await self._script(
                queue_lua.FORGET_RECEIPT_ENTRIES, [self.keys.receipts], [number(before), *members]
            )
            total += int(removed)
            if len(members) < RECEIPT_BATCH:
                return total
