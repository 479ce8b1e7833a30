"""Faults a cluster must survive (issue 6): a replica SIGKILLed in the middle of a push
burst, Redis stopped for half a minute, Redis frozen. At-least-once: nothing the hub
acknowledged is lost; duplicates are allowed, and counted."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from tests.push.helpers import jti_of
from tests.replicas.cluster import PUSH, Cluster, Replica, hub_cluster
from tests.support.receiver import PushReceiver, Reply, push_receiver
from tests.support.redis import RedisServer

OUTAGE_SECONDS = 30.0


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)


def delivered(receiver: PushReceiver) -> Counter[str]:
    return Counter(jti_of(body) for body in receiver.accepted())


@pytest.mark.slow
async def test_every_set_reaches_the_receiver_when_a_replica_is_killed_mid_burst(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    # A short lease so the survivor takes the dead replica's streams over within seconds.
    env = {"SSF_HUB_PUSH_LEASE_SECONDS": "2", "SSF_HUB_PUSH_RETRY_SCHEDULE": "0,0.2"}
    async with push_receiver() as receiver, hub_cluster(own_redis.url, tmp_path, env=env) as cluster:
        receiver.default = Reply(202, delay=0.02)  # slow enough that the burst is still in flight
        a, b = cluster.replicas
        for owner in (a, b, a, b):
            await cluster.create_stream(owner, delivery={"method": PUSH, "endpoint_url": receiver.url})
        emitted: list[str] = []
        for _ in range(15):  # queued on a, so a's workers take the four streams' leases
            emitted += await cluster.emit(a)
        await receiver.wait_accepted(10)
        a.kill()
        in_flight_at_kill = len(emitted) - len(delivered(receiver))
        for _ in range(15):
            emitted += await cluster.emit(b)

        async def all_delivered() -> bool:
            return set(delivered(receiver)) >= set(emitted)

        await until(all_delivered, 25, "every SET delivered after the kill")
        counts = delivered(receiver)
        duplicates = sum(n - 1 for n in counts.values())
        print(
            f"\nkill -9 mid-burst: {len(emitted)} SETs emitted, {in_flight_at_kill} not yet delivered "
            f"at the kill, {len(set(emitted) - set(counts))} lost, {duplicates} duplicate(s)"
        )
        assert len(emitted) == 120 and set(counts) == set(emitted)
        assert b.tracebacks() == 0


async def answers_503(replica: Replica, cluster: Cluster, stream_id: str) -> float:
    """Ask ``replica`` to emit, poll and read a stream; each must fail fast with the JSON
    error and a ``Retry-After``. Returns the slowest answer's time in seconds."""
    requests = [
        (
            "POST",
            "/ssf/admin/events",
            {"event": "session-revoked", "subject": {"format": "email", "email": "a@b.c"}},
            cluster.admin(),
        ),
        ("POST", f"/ssf/poll/{stream_id}", {"returnImmediately": True}, cluster.auth()),
        ("GET", f"/ssf/stream?stream_id={stream_id}", None, cluster.auth()),
    ]
    slowest = 0.0
    for method, path, body, auth in requests:
        started = time.monotonic()
        r = await replica.client.request(method, path, json=body, headers=auth, timeout=10)
        slowest = max(slowest, time.monotonic() - started)
        assert r.status_code == 503, f"{method} {path}: {r.status_code} {r.text}"
        assert r.json()["err"] == "temporarily_unavailable" and r.json()["description"]
        assert int(r.headers["retry-after"]) >= 1
        assert "Traceback" not in r.text
    health = await replica.client.get("/healthz", timeout=10)
    assert health.status_code == 503
    return slowest


@pytest.mark.slow
async def test_a_redis_outage_gets_fast_503s_and_loses_no_acknowledged_set(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    env = {"SSF_HUB_PUSH_RETRY_SCHEDULE": "0,1"}
    async with push_receiver() as receiver, hub_cluster(own_redis.url, tmp_path, env=env) as cluster:
        a, b = cluster.replicas
        receiver.default = Reply(503)  # the push receiver is down as well: its SETs stay queued
        pushed = await cluster.create_stream(a, delivery={"method": PUSH, "endpoint_url": receiver.url})
        polled = await cluster.create_stream(b)
        acknowledged: list[str] = []
        for replica in (a, b, a, b):
            acknowledged += await cluster.emit(replica)  # 200: durably queued (2 SETs each)
        await receiver.wait_for(1)
        await asyncio.sleep(1.1)  # past appendfsync everysec: these are on disk

        own_redis.stop()
        receiver.default = Reply(202)
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        slowest, rounds = 0.0, 0
        while time.monotonic() < outage_ends:
            for replica in (a, b):
                slowest = max(slowest, await answers_503(replica, cluster, pushed["stream_id"]))
            rounds += 1
            await asyncio.sleep(1)
        own_redis.start()  # same port, same append-only file
        recovered = time.monotonic()

        async def healthy() -> bool:
            for replica in (a, b):
                try:
                    if (await replica.client.get("/healthz", timeout=2)).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
            return True

        await until(healthy, 15, "both replicas healthy again")
        push_jtis = set(acknowledged) - set(await poll_all(b, cluster, polled["stream_id"], ack=False))

        async def pushed_all() -> bool:
            return set(delivered(receiver)) >= push_jtis

        await until(pushed_all, 20, "push delivery resumed without a restart")
        resumed = time.monotonic() - recovered
        in_poll = await poll_all(a, cluster, polled["stream_id"], ack=True)
        assert len(push_jtis) == 4 and len(in_poll) == 4
        assert set(delivered(receiver)) | set(in_poll) == set(acknowledged)  # 0 lost

        # The wake-up relay is back too: a long poll held on a wakes for an emit on b.
        held = asyncio.create_task(
            a.client.post(
                f"/ssf/poll/{polled['stream_id']}", json={"returnImmediately": False}, headers=cluster.auth()
            )
        )
        await asyncio.sleep(0.5)
        after = await cluster.emit(b)  # one SET for each stream
        woken = (await held).json()["sets"]
        assert len(woken) == 1 and set(woken) < set(after)
        print(
            f"\nredis down {OUTAGE_SECONDS:.0f} s: {rounds * 8} requests answered 503 with Retry-After, "
            f"slowest {slowest * 1000:.0f} ms; push resumed {resumed:.1f} s after redis came back; "
            f"{len(acknowledged)} acknowledged SETs, 0 lost"
        )
        assert a.tracebacks() == 0 and b.tracebacks() == 0


async def poll_all(replica: Replica, cluster: Cluster, stream_id: str, *, ack: bool = False) -> list[str]:
    r = await replica.client.post(
        f"/ssf/poll/{stream_id}", json={"returnImmediately": True, "maxEvents": 100}, headers=cluster.auth()
    )
    assert r.status_code == 200, r.text
    jtis = list(r.json()["sets"])
    if ack and jtis:
        r = await replica.client.post(
            f"/ssf/poll/{stream_id}", json={"ack": jtis, "returnImmediately": True}, headers=cluster.auth()
        )
        assert r.status_code == 200, r.text
    return jtis


@pytest.mark.slow
async def test_a_hung_redis_gets_503s_within_the_command_timeout_not_a_hang(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    async with hub_cluster(own_redis.url, tmp_path, replicas=1) as cluster:
        (a,) = cluster.replicas
        polled = await cluster.create_stream(a)
        cluster.admin()  # minted now: `ssf-hub token` reads its key from Redis too
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)  # accepts connections, never answers
        try:
            slowest = await answers_503(a, cluster, polled["stream_id"])
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        print(f"\nredis frozen: 503 with Retry-After, slowest answer {slowest * 1000:.0f} ms")
        (jti,) = await cluster.emit(a)
        assert await poll_all(a, cluster, polled["stream_id"]) == [jti]
        assert a.tracebacks() == 0
