from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import RunningHub, run_hub
from tests.support.redis import RedisCluster, RedisServer, start_redis, start_redis_cluster


@pytest.fixture
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningHub]:
    """A real ssf-hub on a free loopback port with a fresh SQLite data dir (or, for tests
    marked ``@on_each_store``, also on the session's redis-server)."""
    store_settings = each_store_settings(request, getattr(request, "param", "sqlite"))
    async with run_hub(tmp_path / "data", long_poll_seconds=2.0, **store_settings) as running:
        yield running


def each_store_settings(request: pytest.FixtureRequest, store: str) -> dict[str, Any]:
    if store == "sqlite":
        return {}
    return {"store": "redis", "redis_url": request.getfixturevalue("redis_url")}


@pytest.fixture(params=["sqlite", "redis"])
def each_store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for ``run_hub(path, **each_store)``: the test runs once per store."""
    return each_store_settings(request, request.param)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole run (no persistence: fast); see ``redis_url``."""
    with start_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's redis-server, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One three-master Redis Cluster for the whole run (per xdist worker; ~4 s to form)."""
    with start_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The session's cluster, emptied for this test: one node's plain URL, as an operator
    would pass it (the hub detects cluster mode)."""
    redis_cluster.flush()
    return redis_cluster.url
