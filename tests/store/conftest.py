"""Fixtures that run the Store contract suite against every backend.

A new backend is one factory in ``BACKENDS``: it gets the test's request and tmp_path and
returns an un-opened store; calling it twice must give two stores over the same data
(durability). The Redis backends run on the session's redis-server and on the session's
three-node Redis Cluster, flushed per test; both check, on every script call, that the
script's keys hash to one slot (``SlotCheckedRedisStore``), and both run with their record
cache in use, subscribed to the change channel as in a running hub.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from hub.delivery.wakeup import QueueSignal
from hub.delivery.wakeup_redis import RedisWakeupRelay
from hub.store import SQLiteStore, Store
from hub.store.redis import RedisStore
from hub.store.redis_engine import ScriptCall

StoreFactory = Callable[[], Store]


class SlotCheckedRedisStore(RedisStore):
    """A RedisStore that refuses any script call whose KEYS span slots, and notes which
    scripts ran (``scripts_run``), so the guard needs no cluster to catch a regression.
    Opened, it keeps stream records and subjects (``redis_cache``) as a hub does: a wake-up
    relay carries the change channel to it."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.scripts_run: set[str] = set()
        self.relay: RedisWakeupRelay | None = None

    async def open(self) -> None:
        await super().open()
        channel = self.keys.changes_channel
        self.relay = RedisWakeupRelay(self.url, QueueSignal(), records=self.cache, changes_channel=channel)
        await self.relay.start()
        async with asyncio.timeout(10):
            while not self.cache.live:
                await asyncio.sleep(0.005)

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
        await super().close()

    def _checked(self, source: str, keys: Sequence[str]) -> None:
        slots = {key_slot(key.encode()) for key in keys}
        assert keys, f"a script without KEYS cannot be routed on a cluster:\n{source}"
        assert len(slots) == 1, f"script KEYS span slots {sorted(slots)}: {list(keys)}\n{source}"
        self.scripts_run.add(source)

    async def _script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        self._checked(source, keys)
        return await super()._script(source, keys, args)

    def _evalsha(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, ...]:
        self._checked(source, keys)  # every pipelined script call
        return super()._evalsha(source, keys, args)

    async def _scripts_each(self, calls: Sequence[ScriptCall]) -> list[Any]:
        for source, keys, _ in calls:
            self._checked(source, keys)
        return await super()._scripts_each(calls)


def make_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "data" / "hub.sqlite3")


def make_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SlotCheckedRedisStore(request.getfixturevalue("redis_url"))


def make_redis_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SlotCheckedRedisStore(request.getfixturevalue("redis_cluster_url"))


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite": make_sqlite,
    "redis": make_redis,
    "redis-cluster": make_redis_cluster,
}


@pytest.fixture(params=sorted(BACKENDS))
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes un-opened stores of one backend, all over the same data."""
    return functools.partial(BACKENDS[request.param], request, tmp_path)


@pytest.fixture
async def store(new_store: StoreFactory) -> AsyncIterator[Store]:
    opened = new_store()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
