"""Wake-ups cross replicas over Redis pub/sub (issue 6): a SET queued on one replica wakes
the long poll and the push worker waiting on another, and the relay outlives a Redis restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import redis.asyncio

from hub.core.backoff import ReconnectBackoff
from hub.delivery.wakeup import QueueSignal
from hub.delivery.wakeup_redis import CHANNEL, RedisWakeupRelay
from tests.support.redis import RedisCluster, RedisServer

FAST_RECONNECT = ReconnectBackoff(base=0.05, cap=0.2)


class Replica:
    """The wake-up half of one hub process: its signal, a push listener, and the relay."""

    def __init__(self, url: str) -> None:
        self.signal = QueueSignal()
        self.pushed: list[str] = []  # what the push dispatcher would have been told
        self.signal.subscribe(self.pushed.append)
        self.relay = RedisWakeupRelay.from_url(url, self.signal, backoff=FAST_RECONNECT)


@contextlib.asynccontextmanager
async def replicas(url: str, count: int, *others: str) -> AsyncIterator[list[Replica]]:
    """``count`` replicas on ``url``, then one on each of ``others``."""
    started = [Replica(url) for _ in range(count)] + [Replica(other) for other in others]
    for replica in started:
        await replica.relay.start()
    try:
        async with asyncio.timeout(5):
            for replica in started:
                await replica.relay.subscribed.wait()
        yield started
    finally:
        for replica in started:
            await replica.relay.stop()


async def test_a_set_queued_on_one_replica_wakes_the_long_poll_and_push_worker_on_another(
    redis_url: str,
) -> None:
    async with replicas(redis_url, 2) as (a, b):
        waiting = b.signal.waiter("stream-1")
        a.signal.notify(["stream-1"])
        async with asyncio.timeout(5):
            await waiting.wait()  # no sleep loop on b: the message set the event
        assert b.pushed == ["stream-1"]
        assert a.pushed == ["stream-1"]  # and the replica that queued it was woken directly


async def test_a_replica_does_not_wake_itself_twice(redis_url: str) -> None:
    async with replicas(redis_url, 3) as (a, b, c):
        a.signal.notify(["s1", "s2"])
        b.signal.notify(["s2"])
        async with asyncio.timeout(5):
            while c.relay.received < 2 or a.relay.received < 1 or b.relay.received < 1:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # room for a wrongly echoed message to arrive
        assert a.pushed == ["s1", "s2", "s2"]  # its own notify once, then b's
        assert sorted(b.pushed) == ["s1", "s2", "s2"]
        assert sorted(c.pushed) == ["s1", "s2", "s2"]  # both, each once
        assert (a.relay.received, b.relay.received, c.relay.received) == (1, 1, 2)


async def test_malformed_messages_on_the_channel_are_ignored(redis_url: str) -> None:
    async with replicas(redis_url, 2) as (a, b):
        raw = redis.asyncio.Redis.from_url(redis_url)
        try:
            for junk in (b"\xff\xfe", b"[]", b'{"streams": "s1"}', b"not json"):
                await raw.publish(CHANNEL, junk)
        finally:
            await raw.aclose()
        waiting = b.signal.waiter("s9")
        a.signal.notify(["s9"])
        async with asyncio.timeout(5):
            await waiting.wait()
        assert b.pushed == ["s9"]


async def test_the_relay_reconnects_after_a_redis_restart_and_wakes_polls_that_may_have_missed_one(
    own_redis: RedisServer,
) -> None:
    async with replicas(own_redis.url, 2) as (a, b):
        warm = a.signal.waiter("stream-0")
        b.signal.notify(["stream-0"])  # b now holds a publishing connection that the restart breaks
        async with asyncio.timeout(5):
            await warm.wait()
        waiting = b.signal.waiter("stream-1")
        own_redis.stop()
        async with asyncio.timeout(5):
            while b.relay.subscribed.is_set():
                await asyncio.sleep(0.01)
        a.signal.notify(["stream-1"])  # published into the void: nobody hears it
        await asyncio.sleep(0.3)
        assert not waiting.is_set()
        own_redis.start()  # same port, same data directory
        async with asyncio.timeout(10):
            await b.relay.subscribed.wait()
            await waiting.wait()  # re-subscribing wakes waiting polls so they re-read the queue
            await a.relay.subscribed.wait()
        again = b.signal.waiter("stream-2")
        a.signal.notify(["stream-2"])
        back = a.signal.waiter("stream-3")
        b.signal.notify(["stream-3"])  # the first publish after the restart is not lost
        async with asyncio.timeout(5):
            await again.wait()  # and relaying works again, both ways
            await back.wait()


async def test_on_a_cluster_a_set_queued_via_one_node_wakes_a_replica_subscribed_on_another(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    # a subscribes on node 0 (a plain URL: cluster mode is detected), b on node 1 (the
    # explicit form): each PUBLISH must cross the cluster bus to reach the other.
    async with replicas(redis_cluster_url, 1, redis_cluster.cluster_url) as (a, b):
        assert a.relay.cluster and b.relay.cluster
        assert a.relay.subscribed_at != b.relay.subscribed_at
        waiting = a.signal.waiter("stream-1")
        b.signal.notify(["stream-1"])
        back = b.signal.waiter("stream-2")
        a.signal.notify(["stream-2"])
        async with asyncio.timeout(5):
            await waiting.wait()
            await back.wait()
        # Each woken once for each: directly for its own notify, over the bus for the other's.
        assert sorted(a.pushed) == sorted(b.pushed) == ["stream-1", "stream-2"]
