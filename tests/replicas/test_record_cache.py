"""Each replica keeps stream records and subjects in-process (``hub/store/redis_cache.py``);
a change made through another replica reaches it over the store's change channel within
milliseconds. Here two ``ssf-hub serve`` processes on one Redis: a stream paused, deleted
or given up by its subject on one replica stops receiving on the other within the bound."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.replicas.cluster import ALICE, Cluster, Replica, hub_cluster

BOUND = 1.0  # seconds: the pub/sub message's trip, with room for a loaded test machine


async def within_bound(check: Callable[[], Awaitable[bool]]) -> None:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < BOUND, f"not seen within {BOUND} s"
        await asyncio.sleep(0.01)


async def poll(cluster: Cluster, replica: Replica, stream_id: str, ack: list[str] | None = None) -> list[str]:
    body = {"returnImmediately": True, "ack": ack or []}
    r = await replica.client.post(f"/ssf/poll/{stream_id}", json=body, headers=cluster.auth())
    assert r.status_code == 200, r.text
    return list(r.json()["sets"])


async def test_a_stream_paused_on_one_replica_stops_receiving_on_the_other(
    redis_url: str, tmp_path: Path
) -> None:
    async with hub_cluster(redis_url, tmp_path) as cluster:
        a, b = cluster.replicas
        sid = (await cluster.create_stream(a))["stream_id"]
        first = await cluster.emit(b)  # b routes to the stream, and keeps its record
        assert await poll(cluster, b, sid) == first
        assert await poll(cluster, b, sid, ack=first) == []

        r = await a.client.post(
            "/ssf/status", json={"stream_id": sid, "status": "paused"}, headers=cluster.auth()
        )
        assert r.status_code == 200, r.text

        async def b_sees_paused() -> bool:
            r = await b.client.get("/ssf/status", params={"stream_id": sid}, headers=cluster.auth())
            return bool(r.json()["status"] == "paused")

        await within_bound(b_sees_paused)
        held = await cluster.emit(b)
        assert len(held) == 1  # R-STATUS-5: queued, held while paused ...
        assert await poll(cluster, b, sid) == []  # ... so not delivered by b
        assert await poll(cluster, a, sid) == []


async def test_a_stream_deleted_on_one_replica_is_gone_on_the_other(redis_url: str, tmp_path: Path) -> None:
    async with hub_cluster(redis_url, tmp_path) as cluster:
        a, b = cluster.replicas
        sid = (await cluster.create_stream(a))["stream_id"]
        assert len(await cluster.emit(b)) == 1
        assert len(await poll(cluster, b, sid)) == 1  # b has read the record

        r = await a.client.delete("/ssf/stream", params={"stream_id": sid}, headers=cluster.auth())
        assert r.status_code == 204

        async def b_sees_it_gone() -> bool:
            r = await b.client.post(
                f"/ssf/poll/{sid}", json={"returnImmediately": True}, headers=cluster.auth()
            )
            return r.status_code == 404

        await within_bound(b_sees_it_gone)
        assert await cluster.emit(b) == []  # routed nowhere


async def test_a_subject_removed_on_one_replica_is_not_routed_on_the_other(
    redis_url: str, tmp_path: Path
) -> None:
    async with hub_cluster(redis_url, tmp_path) as cluster:
        a, b = cluster.replicas
        sid = (await cluster.create_stream(a))["stream_id"]
        assert len(await cluster.emit(b)) == 1  # b routed Alice's event through her subject entry

        body = {"stream_id": sid, "subject": ALICE}
        r = await a.client.post("/ssf/subjects:remove", json=body, headers=cluster.auth())
        assert r.status_code == 204, r.text

        async def b_routes_nowhere() -> bool:
            return await cluster.emit(b) == []

        await within_bound(b_routes_nowhere)
