"""Two ``ssf-hub serve`` processes on one Redis behave as one hub (issue 6): any replica
serves any call, a SET queued on one is delivered once per stream, and a long poll or a
push worker on one wakes when work is queued on the other."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from hub.store.redis import RedisStore
from tests.push.helpers import jti_of
from tests.replicas.cluster import PUSH, hub_cluster
from tests.support.receiver import Reply, push_receiver


async def test_a_stream_created_on_one_replica_is_managed_on_the_other(
    redis_url: str, tmp_path: Path
) -> None:
    async with hub_cluster(redis_url, tmp_path) as cluster:
        a, b = cluster.replicas
        stream = await cluster.create_stream(a)
        sid, auth = stream["stream_id"], cluster.auth()

        r = await b.client.get("/ssf/stream", params={"stream_id": sid}, headers=auth)
        assert r.status_code == 200 and r.json() == stream  # R-STREAM-4: the same configuration
        r = await b.client.patch(
            "/ssf/stream", json={"stream_id": sid, "description": "changed on b"}, headers=auth
        )
        assert r.status_code == 200, r.text
        r = await a.client.get("/ssf/stream", params={"stream_id": sid}, headers=auth)
        assert r.json()["description"] == "changed on b"

        r = await b.client.post("/ssf/status", json={"stream_id": sid, "status": "paused"}, headers=auth)
        assert r.status_code == 200, r.text
        r = await a.client.get("/ssf/status", params={"stream_id": sid}, headers=auth)
        assert r.json()["status"] == "paused"  # R-STATUS-1

        other = cluster.auth("receiver-2")
        r = await b.client.get("/ssf/stream", params={"stream_id": sid}, headers=other)
        assert r.status_code == 404  # owned by receiver-1 on every replica

        r = await b.client.delete("/ssf/stream", params={"stream_id": sid}, headers=auth)
        assert r.status_code == 204
        r = await a.client.get("/ssf/stream", params={"stream_id": sid}, headers=auth)
        assert r.status_code == 404


async def test_a_long_poll_held_on_one_replica_returns_a_set_emitted_on_the_other(
    redis_url: str, tmp_path: Path
) -> None:
    async with hub_cluster(redis_url, tmp_path) as cluster:
        a, b = cluster.replicas
        stream = await cluster.create_stream(a)
        poll_path = f"/ssf/poll/{stream['stream_id']}"

        # Held on b for up to 20 s (the default); it re-reads the queue only when woken,
        # so getting the SET back means b heard about a's emit (R-POLL-2 returnImmediately).
        held = asyncio.create_task(
            b.client.post(poll_path, json={"returnImmediately": False}, headers=cluster.auth())
        )
        await asyncio.sleep(0.5)
        assert not held.done()
        (jti,) = await cluster.emit(a)
        r = await held
        assert r.status_code == 200, r.text
        assert list(r.json()["sets"]) == [jti]  # a timed-out poll would have come back empty

        # Acknowledged on a, gone on b (R-POLL-6): one queue per stream, whichever replica.
        r = await a.client.post(
            poll_path, json={"ack": [jti], "returnImmediately": True}, headers=cluster.auth()
        )
        assert r.json()["sets"] == {}
        r = await b.client.post(poll_path, json={"returnImmediately": True}, headers=cluster.auth())
        assert r.json()["sets"] == {}


async def test_one_emit_queues_one_set_per_stream_whichever_replica_takes_it(
    redis_url: str, tmp_path: Path
) -> None:
    async with hub_cluster(redis_url, tmp_path) as cluster:
        a, b = cluster.replicas
        streams = [await cluster.create_stream(a), await cluster.create_stream(b)]
        emitted = await cluster.emit(b) + await cluster.emit(a)
        assert len(emitted) == 4  # two events, two streams: no per-replica fan-out

        seen: Counter[str] = Counter()
        for stream in streams:
            for replica in (a, b):  # unacknowledged SETs are redelivered by either replica
                r = await replica.client.post(
                    f"/ssf/poll/{stream['stream_id']}",
                    json={"returnImmediately": True},
                    headers=cluster.auth(),
                )
                seen.update(list(r.json()["sets"]))
        assert set(seen) == set(emitted)
        assert set(seen.values()) == {2}  # each SET once per poll, on both replicas


async def test_push_work_queued_on_one_replica_is_sent_by_the_replica_holding_the_stream(
    redis_url: str, tmp_path: Path
) -> None:
    async with push_receiver() as receiver, hub_cluster(redis_url, tmp_path) as cluster:
        a, b = cluster.replicas
        await cluster.create_stream(a, delivery={"method": PUSH, "endpoint_url": receiver.url})
        first = await cluster.emit(a)
        await receiver.wait_accepted(1)
        # a's worker keeps the stream's lease while it idles; b cannot take it, so only a
        # wake-up relayed from b to a gets this SET out before the lease would expire (30 s).
        second = await cluster.emit(b)
        accepted = await receiver.wait_accepted(2, timeout=10)
        assert [jti_of(body) for body in accepted] == first + second
        assert all(r.tracebacks() == 0 for r in cluster.replicas)


@pytest.mark.slow
async def test_a_replica_that_lost_a_streams_lease_stops_sending_that_stream(
    redis_url: str, tmp_path: Path
) -> None:
    # Renewed every 0.5 s while a batch is being sent: a replica stalled past its lease
    # finds another holder at the next renewal and stops, so two never send one stream.
    env = {"SSF_HUB_PUSH_LEASE_SECONDS": "1.5"}
    async with push_receiver() as receiver, hub_cluster(redis_url, tmp_path, replicas=1, env=env) as cluster:
        receiver.default = Reply(202, delay=0.05)  # 100 SETs take 5 s: one batch outlives the lease
        (a,) = cluster.replicas
        stream = await cluster.create_stream(a, delivery={"method": PUSH, "endpoint_url": receiver.url})
        r = await a.client.post("/ssf/status", json={"stream_id": stream["stream_id"], "status": "paused"},
                                headers=cluster.auth())  # fmt: skip
        assert r.status_code == 200, r.text
        emitted = [jti for _ in range(60) for jti in await cluster.emit(a)]  # held while paused
        r = await a.client.post("/ssf/status", json={"stream_id": stream["stream_id"], "status": "enabled"},
                                headers=cluster.auth())  # fmt: skip
        assert r.status_code == 200, r.text
        await receiver.wait_accepted(5)

        store = RedisStore(redis_url)  # another replica's view of the same Redis
        await store.open()
        lease = f"push:{stream['stream_id']}"
        try:
            while True:  # take the lease over, as a replica would once a's had run out
                holder = await store.client.hget(store.keys.lease(lease), "holder")
                await store.release_lease(lease, str(holder))
                if await store.acquire_lease(lease, "replica-b", now=time.time(), ttl=60):
                    break
            await asyncio.sleep(1.0)  # a renews within 0.5 s, finds replica-b, stops
            settled = len(receiver.received)
            await asyncio.sleep(1.0)
            assert len(receiver.received) == settled  # nothing more from a ...
            assert len(set(map(jti_of, receiver.accepted()))) < len(emitted)  # ... though SETs are left
            await store.release_lease(lease, "replica-b")
        finally:
            await store.close()
        async with asyncio.timeout(20):  # free again: the sweep hands the rest to a worker
            while not set(map(jti_of, receiver.accepted())) >= set(emitted):
                await asyncio.sleep(0.1)
