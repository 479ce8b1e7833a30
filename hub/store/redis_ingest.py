"""Trusted upstream issuers, ingest receipts and upstream subscriptions on Redis (issue #4).

An ingest is a saga, crash-safe without a cross-slot transaction (on a cluster the
receipt and the streams live on different nodes):

1. the receipt's index entry is added (``{hub}:ingested``, for retention; a superset);
2. the receipt is claimed in its own slot, atomically with the SETs it will queue (they
   are signed already): a receipt that exists and has not expired makes this a duplicate;
3. the SETs are queued, one script per stream, idempotent by jti (a stream that has the
   jti keeps it);
4. the receipt is marked done and forgets the SETs.

A duplicate that finds the receipt claimed but not done (its claimer crashed, or is still
at step 3) replays the stored SETs (3 and 4; idempotent) and reports a duplicate. So a
crash at any point neither loses an accepted SET's fan-out (the sender retries what it
got no 202 for, and the retry finishes it) nor doubles it. ``was_ingested`` counts only
done receipts, so such a retry reaches ``ingest``.

A receipt is a hash that Redis expires after its de-duplication window, so receipts never
pile up even if retention does not run; its ``expires_at`` is still what decides
"duplicate or new" (the caller's clock, as on SQLite), and the ``ingested`` sorted set
lets retention count and drop receipts explicitly.
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
from hub.store.redis_queue import dumps, number
from hub.store.redis_retention import RedisRetention
from hub.store.sealing import open_upstream, seal_upstream

CLAIMED, DUPLICATE, REPLAY = 1, 0, 2  # what claiming a receipt says


class RedisIngest(RedisRetention):
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
        fields = await self.client.hmget(self.keys.receipt(member(iss, jti)), ["expires_at", "state"])
        expires_at, state = fields
        return expires_at is not None and float(expires_at) > now and state == "done"

    @guarded
    async def ingest(self, receipt: IngestReceipt, items: Sequence[QueuedSet]) -> bool:
        rows = self.rows(items)  # checked before anything is written
        outcome, stored = await self.claim_receipt(receipt, rows)
        if outcome == DUPLICATE:
            return False
        if outcome == REPLAY:
            rows = [(sid, row) for sid, row in json.loads(stored or "[]")]
        await self.enqueue_rows(rows)
        await self._script(queue_lua.FINISH_RECEIPT, [self._receipt_key(receipt)], [])
        return outcome == CLAIMED

    async def claim_receipt(
        self, receipt: IngestReceipt, rows: Sequence[tuple[str, Sequence[str]]]
    ) -> tuple[int, str | None]:
        """Steps 1 and 2 of the saga: (CLAIMED, None), (DUPLICATE, None) or (REPLAY, the
        SETs a claimer that did not finish stored)."""
        r = receipt
        await self.client.zadd(self.keys.receipts, {member(r.iss, r.jti): r.expires_at})
        window_ms = max(1, math.ceil((r.expires_at - r.received_at) * 1000))
        args = (number(r.received_at), number(r.expires_at), window_ms, r.txn or "", dumps(list(rows)))
        reply = await self._script(queue_lua.CLAIM_RECEIPT, [self._receipt_key(r)], args)
        outcome = int(reply[0])
        return outcome, (reply[1] if outcome == REPLAY and len(reply) > 1 else None)

    def _receipt_key(self, receipt: IngestReceipt) -> str:
        return self.keys.receipt(member(receipt.iss, receipt.jti))

    # -- upstream subscriptions ----------------------------------------------------------------
    @guarded
    async def add_upstream(self, upstream: Upstream) -> bool:
        keys = [self.keys.upstream(upstream.upstream_id), self.keys.upstreams]
        args = (
            upstream.upstream_id,
            number(upstream.created_at),
            dumps(seal_upstream(upstream.config_record(), self.sealer)),
            dumps(upstream.state.to_record()),
        )
        return bool(await self._script(lua.ADD_UPSTREAM, keys, args))

    @guarded
    async def get_upstream(self, upstream_id: str) -> Upstream | None:
        fields = cast(dict[str, str], await self.client.hgetall(self.keys.upstream(upstream_id)))
        return self._upstream(fields) if fields else None

    @guarded
    async def list_upstreams(self) -> list[Upstream]:
        ids = cast(list[str], await self.client.zrange(self.keys.upstreams, 0, -1))
        async with self.client.pipeline(transaction=False) as pipe:
            for upstream_id in ids:
                pipe.hgetall(self.keys.upstream(upstream_id))
            found = await pipe.execute()
        return [self._upstream(fields) for fields in found if fields]

    @guarded
    async def remove_upstream(self, upstream_id: str) -> bool:
        keys = [self.keys.upstream(upstream_id), self.keys.upstreams]
        return bool(await self._script(lua.REMOVE_UPSTREAM, keys, [upstream_id]))

    @guarded
    async def save_upstream_state(self, upstream_id: str, state: UpstreamState) -> bool:
        keys = [self.keys.upstream(upstream_id)]
        return bool(await self._script(lua.SAVE_UPSTREAM_STATE, keys, [dumps(state.to_record())]))

    def _upstream(self, fields: dict[str, str]) -> Upstream:
        config = open_upstream(json.loads(fields["config"]), self.sealer)
        return Upstream.from_records(config, json.loads(fields["state"]))
