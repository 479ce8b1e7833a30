from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis import RedisServer, start_redis


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with AOF everysec (the production setting) that the test may
    stop, freeze and start again on the same port and data."""
    with start_redis(tmp_path / "redis", appendonly=True) as server:
        yield server
