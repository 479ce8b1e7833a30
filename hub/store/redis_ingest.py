"""Trusted upstream issuers, ingest receipts and upstream subscriptions on Redis (issue #4).

An ingest receipt is a hash that Redis expires after its de-duplication window, so
receipts never pile up even if retention does not run; its ``expires_at`` is still what
decides "duplicate or new" (the caller's clock, as on SQLite), and the ``ingested``
sorted set lets retention count and drop receipts explicitly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import cast

from hub.core.issuers import TrustedIssuer
from hub.core.model import IngestReceipt, QueuedSet
from hub.core.upstreams import Upstream, UpstreamState
from hub.store import redis_queue_scripts as queue_lua
from hub.store import redis_scripts as lua
from hub.store.redis_engine import guarded
from hub.store.redis_keys import member
from hub.store.redis_queue import RETENTION_BATCH, RedisQueue, dumps, enqueue_args, number


class RedisIngest(RedisQueue):
    # -- trusted issuers -----------------------------------------------------------------------
    @guarded
    async def put_issuer(self, issuer: TrustedIssuer) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.issuers, issuer.iss, dumps(issuer.to_record()))
            pipe.incr(self.keys.issuers_version)
            await pipe.execute()

    @guarded
    async def get_issuer(self, iss: str) -> TrustedIssuer | None:
        record = await self.client.hget(self.keys.issuers, iss)
        return None if record is None else TrustedIssuer.from_record(json.loads(record))

    @guarded
    async def list_issuers(self) -> list[TrustedIssuer]:
        records = await self.client.hgetall(self.keys.issuers)
        return [TrustedIssuer.from_record(json.loads(records[iss])) for iss in sorted(records)]

    @guarded
    async def remove_issuer(self, iss: str) -> bool:
        keys = [self.keys.issuers, self.keys.issuers_version]
        return bool(await self._script(lua.REMOVE_ISSUER, keys, [iss]))

    @guarded
    async def issuers_version(self) -> int:
        return int(await self.client.get(self.keys.issuers_version) or 0)

    # -- ingest receipts -----------------------------------------------------------------------
    @guarded
    async def was_ingested(self, iss: str, jti: str, *, now: float) -> bool:
        expires_at = await self.client.hget(self.keys.receipt(member(iss, jti)), "expires_at")
        return expires_at is not None and float(expires_at) > now

    @guarded
    async def ingest(self, receipt: IngestReceipt, items: Sequence[QueuedSet]) -> bool:
        r = receipt
        queued = [value for item in items for value in enqueue_args(item)]
        window_ms = max(1, math.ceil((r.expires_at - r.received_at) * 1000))
        args = (member(r.iss, r.jti), number(r.received_at), number(r.expires_at), window_ms, r.txn or "")
        return bool(await self._run(queue_lua.INGEST, *args, *queued))

    @guarded
    async def forget_ingested(self, before: float) -> int:
        total = 0
        while True:
            done = int(await self._run(queue_lua.FORGET_INGESTED, number(before), RETENTION_BATCH))
            total += done
            if done < RETENTION_BATCH:
                return total

    # -- upstream subscriptions ----------------------------------------------------------------
    @guarded
    async def add_upstream(self, upstream: Upstream) -> bool:
        keys = [self.keys.upstream(upstream.upstream_id), self.keys.upstreams]
        args = (
            upstream.upstream_id,
            number(upstream.created_at),
            dumps(upstream.config_record()),
            dumps(upstream.state.to_record()),
        )
        return bool(await self._script(lua.ADD_UPSTREAM, keys, args))

    @guarded
    async def get_upstream(self, upstream_id: str) -> Upstream | None:
        fields = cast(dict[str, str], await self.client.hgetall(self.keys.upstream(upstream_id)))
        return _upstream(fields) if fields else None

    @guarded
    async def list_upstreams(self) -> list[Upstream]:
        ids = cast(list[str], await self.client.zrange(self.keys.upstreams, 0, -1))
        async with self.client.pipeline(transaction=False) as pipe:
            for upstream_id in ids:
                pipe.hgetall(self.keys.upstream(upstream_id))
            found = await pipe.execute()
        return [_upstream(fields) for fields in found if fields]

    @guarded
    async def remove_upstream(self, upstream_id: str) -> bool:
        keys = [self.keys.upstream(upstream_id), self.keys.upstreams]
        return bool(await self._script(lua.REMOVE_UPSTREAM, keys, [upstream_id]))

    @guarded
    async def save_upstream_state(self, upstream_id: str, state: UpstreamState) -> bool:
        keys = [self.keys.upstream(upstream_id)]
        return bool(await self._script(lua.SAVE_UPSTREAM_STATE, keys, [dumps(state.to_record())]))


def _upstream(fields: dict[str, str]) -> Upstream:
    return Upstream.from_records(json.loads(fields["config"]), json.loads(fields["state"]))
