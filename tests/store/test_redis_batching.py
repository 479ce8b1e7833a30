"""On one Redis, the store's commands from every task in one turn of the event loop go out
as one pipeline (``hub/store/redis_batching.py``): one round trip for many requests, each
caller still getting its own replies and its own errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.exceptions import ResponseError

from hub.errors import StoreUnavailable
from hub.store.redis import RedisStore
from tests.store.test_store_contract import jtis, make_stream, queued
from tests.support.redis import start_redis


@pytest.fixture
async def rs(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_concurrent_calls_share_one_round_trip(rs: RedisStore) -> None:
    assert rs.batcher is not None
    for i in range(20):
        await rs.create_stream(make_stream(f"s{i}"))
    before = rs.batcher.batches
    streams = await asyncio.gather(*(rs.get_stream(f"s{i}") for i in range(20)))
    assert [s.stream_id for s in streams if s is not None] == [f"s{i}" for i in range(20)]
    assert rs.batcher.batches == before + 1  # twenty reads, one pipeline

    await rs.enqueue([queued("s0", "j0")])  # Redis learns the scripts (a first call finds them missing)
    before = rs.batcher.batches
    await asyncio.gather(*(rs.enqueue([queued(f"s{i}", f"j{i}")]) for i in range(1, 20)))
    assert rs.batcher.batches == before + 1  # nineteen enqueues, each its three steps in order
    assert [await jtis(rs, f"s{i}") for i in range(3)] == [["j0"], ["j1"], ["j2"]]
    assert sorted(await rs.streams_with_pending()) == sorted(f"s{i}" for i in range(20))


async def test_scripts_redis_has_forgotten_are_loaded_again_and_the_steps_resent_in_order(
    rs: RedisStore,
) -> None:
    await rs.create_stream(make_stream("s1"))
    await rs.enqueue([queued("s1", "j1")])
    await rs.client.script_flush()  # as after a Redis restart
    await rs.enqueue([queued("s1", "j2"), queued("s1", "j1")])  # j1 again: idempotent
    assert await jtis(rs, "s1") == ["j1", "j2"]
    assert await rs.streams_with_pending() == ["s1"]


async def test_a_failing_command_fails_only_its_caller(rs: RedisStore) -> None:
    await rs.create_stream(make_stream("s1"))
    await rs.client.set("text", "not a number")
    failed, stream = await asyncio.gather(rs._send([("INCR", "text")]), rs.get_stream("s1"))
    assert isinstance(failed[0], ResponseError)
    assert stream is not None and stream.stream_id == "s1"


async def test_a_redis_that_is_gone_fails_every_caller_of_the_batch_with_503(tmp_path: Path) -> None:
    with start_redis(tmp_path / "redis") as server:
        rs = RedisStore(server.url, connect_timeout=0.5, command_timeout=0.5)
        await rs.open()
        try:
            await rs.create_stream(make_stream("s1"))
            server.stop()
            outcomes = await asyncio.gather(rs.get_stream("s1"), rs.pending("s1", 10), return_exceptions=True)
            assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        finally:
            await rs.close()
