"""The Redis store keeps stream records and subject entries in-process (``hub/store/redis_cache.py``)
and hears every change another store (another replica) makes to them over the change
channel, so it never serves a stale one for longer than the message takes.

Each cross-store test runs on one Redis and on the three-node cluster, with two stores
(two replicas' worth) over the same data, each subscribed through a wake-up relay as in a
running hub (``SlotCheckedRedisStore``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hub.core.model import Status, Stream, SubjectEntry, SubjectMode
from hub.store.redis import RedisStore
from hub.store.redis_cache import RecordCache
from tests.store.conftest import SlotCheckedRedisStore
from tests.store.test_store_contract import make_stream, subject

# How soon a change made through one store must be seen by the other: the pub/sub message's
# trip, with plenty of room for a loaded test machine (the cache's own expiry is 5 s).
BOUND = 1.0
ANN = "email:ann@example.com"


@pytest.fixture(params=["redis", "redis-cluster"])
async def two(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    url = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    a, b = SlotCheckedRedisStore(url), SlotCheckedRedisStore(url)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def seen_within(bound: float, read: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until ``read()`` holds; fails after ``bound``."""
    started = time.monotonic()
    while not await read():
        assert time.monotonic() - started < bound, f"not seen within {bound} s"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_a_stream_read_twice_is_read_from_redis_once(two: tuple[RedisStore, RedisStore]) -> None:
    a, _ = two
    await a.create_stream(make_stream("s1"))
    first = await a.get_stream("s1")
    hits = a.cache.hits
    assert await a.get_stream("s1") is first  # the kept object, no decode, no round trip
    assert (await a.get_streams(["s1"]))["s1"] is first
    assert a.cache.hits == hits + 2


async def test_a_pause_and_a_delete_on_one_replica_reach_the_other_within_the_bound(
    two: tuple[RedisStore, RedisStore],
) -> None:
    a, b = two
    await a.create_stream(make_stream("s1"))
    assert (await b.get_stream("s1")) is not None
    assert (await b.get_streams(["s1"]))["s1"].status is Status.ENABLED  # kept by b now

    paused = make_stream("s1", status=Status.PAUSED)
    await a.save_stream(paused)
    assert await a.get_stream("s1") == paused  # the writer's own entry went at once

    async def b_sees_paused() -> bool:
        return (await b.get_streams(["s1"]))["s1"].status is Status.PAUSED

    await seen_within(BOUND, b_sees_paused)

    await a.delete_stream("s1")

    async def b_sees_it_gone() -> bool:
        return await b.get_stream("s1") is None and await b.get_streams(["s1"]) == {}

    await seen_within(BOUND, b_sees_it_gone)


async def test_a_subject_removed_or_replaced_on_one_replica_stops_routing_on_the_other(
    two: tuple[RedisStore, RedisStore],
) -> None:
    a, b = two
    await a.create_stream(make_stream("s1"))
    await a.put_subject(subject("s1", "ann@example.com"), [ANN])
    assert [e.excluded for e in await b.find_subjects([ANN])] == [False]
    hits = b.cache.hits
    assert [e.excluded for e in await b.find_subjects([ANN])] == [False]
    assert b.cache.hits == hits + 1  # the entry is kept; only the index was read

    await a.put_subject(subject("s1", "ann@example.com", excluded=True), [ANN])

    async def b_sees_excluded() -> bool:
        return [e.excluded for e in await b.find_subjects([ANN])] == [True]

    await seen_within(BOUND, b_sees_excluded)

    await a.remove_subject("s1", ANN)

    async def b_sees_none() -> bool:
        return await b.find_subjects([ANN]) == []

    await seen_within(BOUND, b_sees_none)


async def test_a_new_stream_or_subject_is_never_missed(two: tuple[RedisStore, RedisStore]) -> None:
    a, b = two
    await a.create_stream(make_stream("s1"))
    await a.put_subject(subject("s1", "ann@example.com"), [ANN])
    assert [e.stream_id for e in await b.find_subjects([ANN])] == ["s1"]
    # Made on a, read on b at once, with no wait for any message: nothing about them was kept.
    await a.create_stream(make_stream("s2"))
    await a.put_subject(subject("s2", "ann@example.com"), [ANN])
    assert [e.stream_id for e in await b.find_subjects([ANN])] == ["s1", "s2"]
    assert set(await b.get_streams(["s1", "s2"])) == {"s1", "s2"}


async def test_without_the_subscription_nothing_is_kept(two: tuple[RedisStore, RedisStore]) -> None:
    a, b = two
    await a.create_stream(make_stream("s1"))
    await b.get_stream("s1")
    assert isinstance(b, SlotCheckedRedisStore) and b.relay is not None
    live_before = b.cache.live
    await b.relay.stop()  # the relay's connection is gone: b hears no more changes
    assert (live_before, b.cache.live) == (True, False)

    await a.save_stream(make_stream("s1", status=Status.PAUSED))
    stream = await b.get_stream("s1")
    assert stream is not None and stream.status is Status.PAUSED  # read from Redis, at once


# -- the cache on its own ---------------------------------------------------------------------
def stream(sid: str, status: Status = Status.ENABLED) -> Stream:
    return make_stream(sid, status=status)


def test_a_read_overtaken_by_a_change_is_not_kept() -> None:
    cache = RecordCache()
    cache.connected()
    before = cache.generation
    cache.changed(["s1"])  # the change arrived while the read of s1 was in flight
    cache.keep_stream(stream("s1"), before)
    assert cache.stream("s1") is None
    cache.keep_stream(stream("s1"), cache.generation)
    assert cache.stream("s1") == stream("s1")


def test_entries_expire_and_a_lost_subscription_empties_the_cache() -> None:
    now = [100.0]
    cache = RecordCache(ttl=5.0, clock=lambda: now[0])
    cache.keep_stream(stream("s1"), cache.generation)
    assert cache.stream("s1") is None  # not subscribed yet: nothing is kept
    cache.connected()
    entry = SubjectEntry("s1", ANN, {"format": "email", "email": "ann@example.com"}, False)
    cache.keep_stream(stream("s1"), cache.generation)
    cache.keep_subject(entry, '["s1","k","n1"]', cache.generation)
    assert cache.subject("s1", ANN, '["s1","k","n1"]') == entry
    assert cache.subject("s1", ANN, '["s1","k","n2"]') is None  # another write's member
    now[0] += 5.5
    assert cache.stream("s1") is None and cache.subject("s1", ANN, '["s1","k","n1"]') is None
    cache.keep_stream(stream("s1"), cache.generation)
    cache.disconnected()
    assert cache.stream("s1") is None
    cache.keep_stream(stream("s1"), cache.generation)
    assert cache.stream("s1") is None


async def test_routing_reads_the_all_subjects_index_with_the_subject_index_for_its_own_event_only(
    two: tuple[RedisStore, RedisStore],
) -> None:
    a, _ = two
    gate = asyncio.Event()

    async def another_event() -> list[str]:
        await gate.wait()
        return await a.streams_with_all_subjects()

    other = asyncio.create_task(another_event())  # its own task: it does not share this one's read
    await a.find_subjects([ANN])  # reads the all-subjects index too, in the same round trip
    await a.create_stream(make_stream("s1", subject_mode=SubjectMode.ALL))
    gate.set()
    assert await other == ["s1"]
    assert await a.streams_with_all_subjects() == []  # this event's read, taken before s1 existed
    assert await a.streams_with_all_subjects() == ["s1"]  # used once, then read anew
