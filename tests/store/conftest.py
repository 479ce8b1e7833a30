"""Fixtures that run the Store contract suite against every backend.

A new backend is one factory in ``BACKENDS``: it gets the test's request and tmp_path and
returns an un-opened store; calling it twice must give two stores over the same data
(durability). The Redis backend runs on the session's redis-server, flushed per test.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from hub.store import SQLiteStore, Store
from hub.store.redis import RedisStore

StoreFactory = Callable[[], Store]


def make_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return SQLiteStore(tmp_path / "data" / "hub.sqlite3")


def make_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return RedisStore(request.getfixturevalue("redis_url"))


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite": make_sqlite,
    "redis": make_redis,
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
