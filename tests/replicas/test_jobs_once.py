"""Timed jobs run once per interval across replicas (issue 6): each replica schedules every
job, and the job's lease in Redis lets one of them run it per interval."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hub.runtime.jobs import LEASE_SHARE, ClusterJob
from hub.store.redis import RedisStore

INTERVAL = 1.0
INTERVALS = 5


@pytest.mark.slow
async def test_each_job_runs_once_per_interval_across_two_replicas(redis_url: str) -> None:
    runs: list[tuple[str, float]] = []  # (replica, when) of every run
    turns: list[bool] = []  # every scheduled tick of either replica: ran it or skipped it
    stores, schedulers = [], []
    for replica in ("replica-a", "replica-b"):
        store = RedisStore(redis_url)  # each replica's own connection to the shared Redis
        await store.open()

        async def retention(replica: str = replica) -> None:
            runs.append((replica, time.monotonic()))

        job = ClusterJob("retention", INTERVAL, retention, store=store, holder=replica, clock=time.time)

        async def tick(job: ClusterJob = job) -> None:
            turns.append(await job())

        scheduler = AsyncIOScheduler()
        scheduler.add_job(tick, "interval", seconds=INTERVAL, coalesce=True, max_instances=1)
        stores.append(store)
        schedulers.append(scheduler)
    try:
        for scheduler in schedulers:
            scheduler.start()
        await asyncio.sleep(INTERVAL * INTERVALS + INTERVAL / 2)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=False)
        for store in stores:
            await store.close()

    assert len(turns) >= 2 * (INTERVALS - 1)  # both replicas tried every interval ...
    assert INTERVALS - 1 <= len(runs) <= INTERVALS + 1  # ... and the job ran about once per interval
    assert turns.count(True) == len(runs)
    times = [when for _, when in runs]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= INTERVAL * LEASE_SHARE - 0.05 for gap in gaps), gaps  # never twice in one interval
