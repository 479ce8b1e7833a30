"""Timed jobs run once per interval across replicas sharing a store (the job lease)."""

from __future__ import annotations

from pathlib import Path

from hub.runtime.jobs import LEASE_SHARE, ClusterJob
from hub.store import SQLiteStore


async def test_a_job_runs_once_per_interval_across_replicas(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "hub.sqlite3")
    await store.open()
    try:
        now = [1000.0]
        runs: list[str] = []

        def job_for(replica: str) -> ClusterJob:
            async def job() -> None:
                runs.append(replica)

            return ClusterJob("retention", 3600, job, store=store, holder=replica, clock=lambda: now[0])

        a, b = job_for("replica-a"), job_for("replica-b")
        assert await a() is True
        assert await b() is False  # same interval: replica b skips
        now[0] += 3600 * LEASE_SHARE + 1
        assert await b() is True  # next interval: whoever comes first runs it
        assert await a() is False
        assert runs == ["replica-a", "replica-b"]
    finally:
        await store.close()


async def test_a_failing_job_does_not_break_the_scheduler(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "hub.sqlite3")
    await store.open()
    try:

        async def boom() -> None:
            raise RuntimeError("disk on fire")

        assert await ClusterJob("x", 60, boom, store=store, holder="h", clock=lambda: 0.0)() is True
    finally:
        await store.close()
