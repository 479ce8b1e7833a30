"""Redis with ``appendonly yes`` and ``appendfsync everysec`` (the documented production
setting, README "Running on Redis"): a restart of Redis, clean (SIGTERM) or not (SIGKILL),
loses no SET whose enqueue was acknowledged more than one second before it went down."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from hub.errors import Unavailable
from hub.store.redis import RedisStore
from tests.store.test_store_contract import make_stream, queued
from tests.support.redis import start_redis

WRITE_SECONDS = 2.5
LOSS_WINDOW = 1.0  # appendfsync everysec


async def enqueue_until_down(store: RedisStore, stop: asyncio.Event) -> list[tuple[str, float]]:
    """Queue one SET at a time until told to stop or Redis goes away; (jti, acknowledged at)."""
    acknowledged: list[tuple[str, float]] = []
    n = 0
    while not stop.is_set():
        jti = f"j{n}"
        try:
            await store.enqueue([queued("s1", jti)])
        except Unavailable:
            break
        acknowledged.append((jti, time.monotonic()))
        n += 1
        await asyncio.sleep(0.002)
    return acknowledged


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_sets_acknowledged_over_a_second_before_a_redis_restart_are_still_queued(
    tmp_path: Path, how: signal.Signals
) -> None:
    with start_redis(tmp_path / "redis", appendonly=True) as server:
        store = RedisStore(server.url)
        await store.open()
        try:
            await store.create_stream(make_stream("s1"))
            stop = asyncio.Event()
            writer = asyncio.create_task(enqueue_until_down(store, stop))
            await asyncio.sleep(WRITE_SECONDS)
            killed_at = time.monotonic()
            await asyncio.to_thread(server.stop, how)
            stop.set()
            acknowledged = await writer
            await asyncio.to_thread(server.start)

            # The same client reconnects by itself once Redis is back.
            still_queued = {item.jti for item in await store.pending("s1", 1_000_000)}
        finally:
            await store.close()

    must_survive = [jti for jti, at in acknowledged if at < killed_at - LOSS_WINDOW]
    assert len(must_survive) > 100, "the writer did not get going"
    assert [jti for jti in must_survive if jti not in still_queued] == []
