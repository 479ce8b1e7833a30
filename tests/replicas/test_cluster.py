"""The hub on a three-master Redis Cluster, end to end: the same delivery as on one Redis,
with every stream's keys on the node that owns its slot and the shared indexes on another.

The hubs get one node's plain ``redis://`` URL, as an operator would give it, and detect
cluster mode themselves (``test_wakeup_relay.py`` also covers the explicit
``redis+cluster://`` form, on another node).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hub.store.redis import RedisStore
from tests.push.helpers import jti_of
from tests.replicas.cluster import ALICE, PUSH, hub_cluster
from tests.support.hub import CAEP, run_hub
from tests.support.receiver import push_receiver
from tests.support.redis import RedisCluster

LONG_POLL = 10.0  # far longer than a wake-up takes: a poll that returns sooner was woken


async def test_a_long_poll_on_a_cluster_is_woken_by_an_emit(redis_cluster_url: str, tmp_path: Path) -> None:
    async with run_hub(
        tmp_path / "data", store="redis", redis_url=redis_cluster_url, long_poll_seconds=LONG_POLL
    ) as hub:
        assert hub.app is not None
        store = hub.app.state.hub.store
        assert isinstance(store, RedisStore) and store.cluster
        stream = await hub.create_stream(events_requested=[CAEP + "session-revoked"])
        await hub.add_subject(stream["stream_id"], ALICE)
        held = asyncio.create_task(hub.poll(stream, returnImmediately=False))
        await asyncio.sleep(0.5)
        assert not held.done()

        started = time.monotonic()
        emitted = await hub.emit("session-revoked", ALICE)
        got = await held

        assert time.monotonic() - started < LONG_POLL / 2
        assert list(got["sets"]) == [s["jti"] for s in emitted["sets"]]


async def test_push_delivery_on_a_cluster_reaches_a_loopback_receiver(
    redis_cluster_url: str, tmp_path: Path
) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(
            tmp_path / "data", store="redis", redis_url=redis_cluster_url, allow_private_endpoints=True
        ) as hub,
    ):
        streams = [
            await hub.create_stream(
                sub=f"rcv-{n}",
                events_requested=[CAEP + "session-revoked"],
                delivery={"method": PUSH, "endpoint_url": receiver.url},
            )
            for n in range(3)  # three streams: their slots spread over the nodes
        ]
        for n, stream in enumerate(streams):
            await hub.add_subject(stream["stream_id"], ALICE, sub=f"rcv-{n}")
        sent = [s["jti"] for _ in range(2) for s in (await hub.emit("session-revoked", ALICE))["sets"]]

        accepted = await receiver.wait_accepted(len(sent))

        assert sorted(map(jti_of, accepted)) == sorted(sent)


async def test_two_serve_processes_on_a_cluster_act_as_one_hub(
    redis_cluster: RedisCluster, redis_cluster_url: str, tmp_path: Path
) -> None:
    async with hub_cluster(redis_cluster_url, tmp_path) as cluster:
        a, b = cluster.replicas
        stream = await cluster.create_stream(a)
        poll_path = f"/ssf/poll/{stream['stream_id']}"
        held = asyncio.create_task(
            a.client.post(poll_path, json={"returnImmediately": False}, headers=cluster.auth())
        )
        await asyncio.sleep(0.5)
        assert not held.done()

        (jti,) = await cluster.emit(b)
        r = await held  # held for 20 s unless b's emit woke a through the cluster's pub/sub

        assert r.status_code == 200, r.text
        assert list(r.json()["sets"]) == [jti]
        r = await b.client.post(
            poll_path, json={"ack": [jti], "returnImmediately": True}, headers=cluster.auth()
        )
        assert r.json()["sets"] == {}
        r = await a.client.post(poll_path, json={"returnImmediately": True}, headers=cluster.auth())
        assert r.json()["sets"] == {}
        assert all(replica.tracebacks() == 0 for replica in cluster.replicas)
