"""Timed jobs (apscheduler): key rotation, retention, inactivity timeouts.

Each run first takes a lease in the store named after the job, held for most of the
interval, so with several replicas on one store a job runs once per interval, not once
per replica.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from hub.keys.rotation import rotate_signing_keys
from hub.keys.storage import RING_RELOAD_SECONDS
from hub.runtime.context import HubContext
from hub.store.base import Store, lease_holder
from hub.store.outages import STORE_OUTAGES, describe_outage

log = logging.getLogger("hub.jobs")

KEY_CHECK_SECONDS = 3600  # how often the rotation job looks at the key ages
RETENTION_CHECK_SECONDS = 3600
INACTIVITY_CHECK_SECONDS = 60
LEASE_SHARE = 0.9  # of the interval: a lease that outlived a slow run would skip a turn


class ClusterJob:
    """A job that runs at most once per interval across every replica sharing ``store``."""

    def __init__(
        self,
        name: str,
        interval: float,
        job: Callable[[], Awaitable[None]],
        *,
        store: Store,
        holder: str,
        clock: Callable[[], float],
    ) -> None:
        self.name, self.interval, self.job = name, interval, job
        self.store, self.holder, self.clock = store, holder, clock

    async def __call__(self) -> bool:
        """Run the job unless another replica holds this interval; True if it ran."""
        ttl = self.interval * LEASE_SHARE
        try:
            if not await self.store.acquire_lease(f"job:{self.name}", self.holder, now=self.clock(), ttl=ttl):
                return False
        except STORE_OUTAGES as exc:
            # Nobody can run it while the store is down; the next interval tries again.
            log.warning("job %s skipped: %s", self.name, describe_outage(exc))
            return False
        try:
            await self.job()
        except STORE_OUTAGES as exc:
            log.warning("job %s interrupted (%s); it runs next interval", self.name, describe_outage(exc))
        except Exception:
            log.exception("job %s failed; it runs again at the next interval", self.name)
        return True


def start_jobs(ctx: HubContext, clock: Callable[[], float]) -> Any:
    """Schedule the hub's jobs on the running event loop; returns the started scheduler."""
    scheduler = AsyncIOScheduler()
    settings = ctx.settings
    holder = lease_holder()

    def once_per_cluster(name: str, interval: float, job: Callable[[], Awaitable[None]]) -> None:
        run = ClusterJob(name, interval, job, store=ctx.store, holder=holder, clock=clock)
        scheduler.add_job(run, "interval", seconds=interval, id=name, coalesce=True, max_instances=1)

    async def rotate_keys() -> None:
        await rotate_signing_keys(ctx.key_storage, ctx.keys, settings, clock())

    async def reload_keys() -> None:
        try:
            if await ctx.key_storage.reload_ring(ctx.keys):
                log.info("signing key ring reloaded from the store; active kid %s", ctx.keys.active.kid)
        except STORE_OUTAGES as exc:
            log.warning("key ring reload skipped: %s", describe_outage(exc))

    async def forget_old_sets() -> None:
        await ctx.store.delete_finished(clock() - settings.retention_days * 86400)
        # Ingest receipts carry their own expiry (ingest_dedup_days), set when they were made.
        await ctx.store.forget_ingested(clock())
        await ctx.store.prune_audit(clock() - settings.retention_days * 86400)

    async def pause_inactive() -> None:
        paused = await ctx.streams.pause_inactive()
        if paused:
            log.info("paused %d inactive stream(s)", len(paused))

    once_per_cluster("rotate_keys", KEY_CHECK_SECONDS, rotate_keys)
    if ctx.key_storage.shared:
        # Every replica, not once per cluster: each must take a rotation another one made.
        scheduler.add_job(
            reload_keys,
            "interval",
            seconds=RING_RELOAD_SECONDS,
            id="reload_keys",
            coalesce=True,
            max_instances=1,
        )
    once_per_cluster("retention", RETENTION_CHECK_SECONDS, forget_old_sets)
    if settings.inactivity_timeout:
        once_per_cluster("inactivity", INACTIVITY_CHECK_SECONDS, pause_inactive)
    scheduler.start()
    return scheduler
