"""The fault scenarios: each runs a real hub through one kind of failure and tallies the SETs.

Every scenario takes a :class:`Size` (``quick`` for CI, ``full`` for the runner's default) and
a work directory, and returns one row: SETs acknowledged (durably queued: the emit answered
200), delivered, lost (must be 0), duplicates, and ``recover_s``: from the end of the fault
until every acknowledged SET was delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults.harness import (
    HubProcess,
    Tally,
    caught_up,
    create_streams,
    draining,
    emit_until,
    local_tokens,
    poll_path,
)
from tests.support.process import SSF_HUB
from tests.support.receiver import Reply, push_receiver
from tests.support.redis import RedisCluster, RedisServer, start_redis_cluster

CATCH_UP_TIMEOUT = 60.0
# Short retries keep the scenarios in seconds; the shape is the real schedule's, compressed.
FAST_RETRIES = {"SSF_HUB_PUSH_RETRY_SCHEDULE": "0,0.05,0.1,0.2,0.4,0.8,1"}


@dataclass(frozen=True)
class Size:
    sets: int  # SETs to acknowledge (two per event: a push and a poll stream)
    kills: int  # SIGKILLs of the hub during the burst
    outage: float  # seconds a dependency (Redis, the receiver) stays down


QUICK = Size(sets=600, kills=3, outage=3.0)
FULL = Size(sets=10_000, kills=10, outage=60.0)

Scenario = Callable[[Size, Path], Awaitable[dict[str, Any]]]


@contextlib.asynccontextmanager
async def one_hub(work: Path, *flags: str, env: dict[str, str] | None = None) -> AsyncIterator[HubProcess]:
    hub = HubProcess(work / "hub", work / "hub.log", flags, {**FAST_RETRIES, **(env or {})})
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()


async def serve_killed(size: Size, work: Path) -> dict[str, Any]:
    """``kill -9`` of ``ssf-hub serve`` (SQLite) ``kills`` times during a push + poll burst."""
    tally = Tally()
    async with push_receiver() as receiver, one_hub(work) as hub:
        receiver.default = Reply(202, delay=0.002)
        manage, admin = local_tokens(hub.data_dir)
        streams = await create_streams(hub.url, manage, receiver)
        async with draining([hub.url], poll_path(streams.poll_url, hub.url), manage, tally):
            burst = asyncio.create_task(emit_until([hub.url], admin, tally, size.sets))
            restarts = []
            for k in range(size.kills):
                await _acknowledged(tally, size.sets * (k + 1) / (size.kills + 1))
                await hub.kill()
                restarts.append(await hub.start())
            await burst
            recover = await caught_up(tally, receiver, CATCH_UP_TIMEOUT)
    return tally.result(receiver, recover_s=recover, faults=size.kills, restart_s=max(restarts, default=0.0))


async def receiver_down(size: Size, work: Path) -> dict[str, Any]:
    """The push receiver answers 503 for ``outage`` seconds, well past the compressed schedule's
    first steps; then it is back and the stream catches up."""
    tally = Tally()
    async with push_receiver() as receiver, one_hub(work) as hub:
        receiver.default = Reply(503)
        manage, admin = local_tokens(hub.data_dir)
        streams = await create_streams(hub.url, manage, receiver)
        async with draining([hub.url], poll_path(streams.poll_url, hub.url), manage, tally):
            await emit_until([hub.url], admin, tally, min(size.sets, 2000))
            await asyncio.sleep(size.outage)
            receiver.default = Reply(202)
            recover = await caught_up(tally, receiver, CATCH_UP_TIMEOUT)
    return tally.result(receiver, recover_s=recover, faults=1)


async def receiver_hangs(size: Size, work: Path) -> dict[str, Any]:
    """The receiver holds its first answers past ``push_timeout`` (1 s), then answers at once.
    A SET it took but answered too late is sent again: those are the duplicates."""
    tally = Tally()
    async with push_receiver() as receiver, one_hub(work, env={"SSF_HUB_PUSH_TIMEOUT": "1"}) as hub:
        receiver.then(*[Reply(202, delay=3.0)] * 3)
        manage, admin = local_tokens(hub.data_dir)
        streams = await create_streams(hub.url, manage, receiver)
        async with draining([hub.url], poll_path(streams.poll_url, hub.url), manage, tally):
            await emit_until([hub.url], admin, tally, min(size.sets, 2000))
            while receiver.script:
                await asyncio.sleep(0.05)
            recover = await caught_up(tally, receiver, CATCH_UP_TIMEOUT)
    return tally.result(receiver, recover_s=recover, faults=3)


async def _burst_on_redis(
    work: Path, redis_url: str, sets: int, after: float, fault: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """One hub on ``redis_url``; ``fault`` runs once ``after`` SETs were acknowledged, while the
    burst goes on; then every acknowledged SET must arrive. ``fault`` returns extra row fields."""
    tally = Tally()
    async with (
        push_receiver() as receiver,
        one_hub(work, "--store", "redis", "--redis-url", redis_url) as hub,
    ):
        receiver.default = Reply(202, delay=0.002)
        manage, admin = await _store_tokens(hub)
        streams = await create_streams(hub.url, manage, receiver)
        async with draining([hub.url], poll_path(streams.poll_url, hub.url), manage, tally):
            burst = asyncio.create_task(emit_until([hub.url], admin, tally, sets))
            await _acknowledged(tally, after)
            extra = await fault()
            await burst
            recover = await caught_up(tally, receiver, CATCH_UP_TIMEOUT)
    return tally.result(receiver, recover_s=recover, faults=1, **extra)


def redis_killed(appendfsync: str) -> Scenario:
    async def scenario(size: Size, work: Path) -> dict[str, Any]:
        redis = RedisServer(work / "redis", appendonly=True, appendfsync=appendfsync)
        redis.start()

        async def kill_and_restart() -> dict[str, Any]:
            await asyncio.to_thread(redis.stop, signal.SIGKILL)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(redis.start)
            return {}

        try:
            return await _burst_on_redis(work, redis.url, size.sets, size.sets / 2, kill_and_restart)
        finally:
            redis.stop(signal.SIGKILL)

    scenario.__doc__ = f"Redis SIGKILLed mid-burst and started again on its AOF (appendfsync {appendfsync})"
    return scenario


async def redis_outage(size: Size, work: Path) -> dict[str, Any]:
    """Redis stopped for ``outage`` seconds while emits keep coming (they get 503), then back."""
    redis = RedisServer(work / "redis", appendonly=True, appendfsync="always")
    redis.start()

    async def outage() -> dict[str, Any]:
        await asyncio.to_thread(redis.stop, signal.SIGTERM)
        await asyncio.sleep(size.outage)
        await asyncio.to_thread(redis.start)
        return {}

    try:
        return await _burst_on_redis(work, redis.url, min(size.sets, 4000), 200, outage)
    finally:
        redis.stop(signal.SIGKILL)


async def replica_killed(size: Size, work: Path) -> dict[str, Any]:
    """Two replicas on one Redis; one is SIGKILLed mid-burst and stays down."""
    redis = RedisServer(work / "redis", appendonly=True, appendfsync="always")
    redis.start()
    tally = Tally()
    env = {**FAST_RETRIES, "SSF_HUB_PUSH_LEASE_SECONDS": "2"}
    flags = ("--store", "redis", "--redis-url", redis.url)
    a = HubProcess(work / "a", work / "a.log", flags, env)
    b = HubProcess(work / "b", work / "b.log", flags, env)
    try:
        await a.start()
        await b.start()
        async with push_receiver() as receiver:
            receiver.default = Reply(202, delay=0.002)
            manage, admin = await _store_tokens(a)
            streams = await create_streams(a.url, manage, receiver)
            urls = [a.url, b.url]
            async with draining(urls, poll_path(streams.poll_url, a.url), manage, tally):
                burst = asyncio.create_task(emit_until(urls, admin, tally, size.sets))
                await _acknowledged(tally, size.sets / 2)
                await a.kill()
                await burst
                recover = await caught_up(tally, receiver, CATCH_UP_TIMEOUT)
        return tally.result(receiver, recover_s=recover, faults=1)
    finally:
        await a.stop()
        await b.stop()
        redis.stop(signal.SIGKILL)


async def disk_full(size: Size, work: Path) -> dict[str, Any]:
    """The SQLite data dir on a 64 MiB tmpfs that fills up mid-burst: emits get 503, nothing
    acknowledged is lost, and the hub recovers when space returns."""
    mount = work / "small"
    mount.mkdir(parents=True)
    proc = await asyncio.create_subprocess_exec("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount))
    if await proc.wait() != 0:
        return {"skipped": "cannot mount a tmpfs here (needs root)"}
    filler = mount / "filler"
    tally = Tally()
    try:
        hub = HubProcess(mount / "hub", work / "hub.log", (), FAST_RETRIES)
        await hub.start()
        try:
            async with push_receiver() as receiver:
                receiver.default = Reply(202)
                manage, admin = local_tokens(hub.data_dir)
                streams = await create_streams(hub.url, manage, receiver)
                async with draining([hub.url], poll_path(streams.poll_url, hub.url), manage, tally):
                    await emit_until([hub.url], admin, tally, 200)
                    _fill(filler, leave=64 * 1024)  # the next few hundred SETs hit SQLITE_FULL
                    refused_before = tally.refused_emits
                    burst = asyncio.create_task(emit_until([hub.url], admin, tally, min(size.sets, 4000)))
                    await _until(lambda: tally.refused_emits > refused_before + 20, timeout=30)
                    filler.unlink()  # space returns
                    await burst
                    recover = await caught_up(tally, receiver, CATCH_UP_TIMEOUT)
                    healthy = hub.process is not None and hub.process.poll() is None
            return tally.result(receiver, recover_s=recover, faults=1, hub_alive=healthy)
        finally:
            await hub.stop()
    finally:
        proc = await asyncio.create_subprocess_exec("umount", "-l", str(mount))
        await proc.wait()


async def cluster_failover(size: Size, work: Path) -> dict[str, Any]:
    """A 3-master Redis Cluster with a replica each; mid-burst one replica takes over its
    master (``CLUSTER FAILOVER``), moving a third of the slots to a new node."""
    with start_redis_cluster(work / "cluster", replicas=1) as cluster:

        async def fail_over() -> dict[str, Any]:
            replica = cluster.replica_ports()[0]
            for _ in range(2):  # a manual failover can time out (replica lagging); ask once more
                await asyncio.to_thread(cluster.fail_over, replica)
                if await _promoted(cluster, replica, timeout=8.0):
                    return {"promoted": True}
            return {"promoted": False}

        return await _burst_on_redis(work, cluster.url, size.sets, size.sets / 2, fail_over)


SCENARIOS: dict[str, Scenario] = {
    "serve-kill": serve_killed,
    "receiver-down": receiver_down,
    "receiver-hang": receiver_hangs,
    "redis-kill-always": redis_killed("always"),
    "redis-kill-everysec": redis_killed("everysec"),
    "redis-outage": redis_outage,
    "replica-kill": replica_killed,
    "disk-full": disk_full,
    "cluster-failover": cluster_failover,
}
# What each promises (README "Reliability"): lost must be 0 except where AOF everysec may lose
# up to a second of writes, and duplicates stay within a per-fault bound.
MAY_LOSE = frozenset({"redis-kill-everysec"})


async def _promoted(cluster: RedisCluster, port: int, timeout: float = 15.0) -> bool:
    """Whether the replica on ``port`` became a master (CLUSTER FAILOVER returns at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port not in await asyncio.to_thread(cluster.replica_ports):
            return True
        await asyncio.sleep(0.1)
    return False


async def _acknowledged(tally: Tally, count: float) -> None:
    await _until(lambda: len(tally.acknowledged) >= count)


async def _until(check: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the scenario did not reach its next step")
        await asyncio.sleep(0.02)


async def _store_tokens(hub: HubProcess) -> tuple[dict[str, str], dict[str, str]]:
    """On Redis the token key lives in the store: mint with ``ssf-hub token`` against it."""
    tokens = []
    for sub, scope in (("receiver-1", "ssf.manage"), ("secops", "ssf.admin")):
        proc = await asyncio.create_subprocess_exec(
            SSF_HUB,
            "token",
            "--data-dir",
            str(hub.data_dir),
            *hub.flags,
            "--sub",
            sub,
            "--scope",
            scope,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        tokens.append({"Authorization": "Bearer " + out.decode().strip()})
    return tokens[0], tokens[1]


def _fill(path: Path, *, leave: int) -> None:
    """Fill the file system of ``path`` to the brim, then give back ``leave`` bytes."""
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as f:  # unbuffered: the error comes from write, not close
        try:
            while f.write(chunk):
                pass
        except OSError:
            pass
        size = f.tell()
    os.truncate(path, max(0, size - leave - len(chunk)))
