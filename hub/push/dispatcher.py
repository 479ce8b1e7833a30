"""The push engine: one worker per stream with pending SETs, in queue order.

A worker holds the stream's lease (so one replica, one process, one task pushes a
stream at a time), sends SETs one by one, and on a retryable failure stops: the SET
at the head blocks the ones behind it on that stream only (per-stream order), until
the retry schedule says to try again. SETs leave the queue only on a 2xx or a
permanent refusal, so a crash mid-delivery means a resend, never a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeGuard

from hub.core.health import DeliveryHealth, after_failure, after_success, should_pause
from hub.core.model import PUSH_METHOD, Attempt, DeliveryState, QueuedSet, Status, Stream
from hub.core.outcome import OutcomeKind
from hub.core.ratelimit import TokenBucket
from hub.core.retry import RetrySchedule
from hub.push.sender import PushResult, PushSender
from hub.store.base import Store
from hub.store.outages import describe_outage, is_store_outage
from hub.wakeup import wait_for

log = logging.getLogger("hub.push")

Sleeper = Callable[[float, asyncio.Event], Awaitable[None]]
PauseStream = Callable[[Stream, str], Awaitable[None]]


async def real_sleep(seconds: float, wake: asyncio.Event) -> None:
    """Wait ``seconds`` or until ``wake`` is set, whichever comes first."""
    await wait_for(wake, seconds)


@dataclass(frozen=True, slots=True)
class PushPolicy:
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    pause_after: float = 86400.0  # failing this long after a SET exhausted its schedule: pause
    batch: int = 100  # SETs read per queue look-up
    endpoint_concurrency: int = 10  # requests in flight to one endpoint_url
    endpoint_rate: float = 1000.0  # SETs per second to one endpoint_url (0 = no cap)
    endpoint_burst: float = 1000.0
    max_in_flight: int = 200  # requests in flight from this process
    lease_ttl: float = 30.0
    idle_exit: float = 30.0  # a worker with nothing to send stops after this long
    sweep_interval: float = 5.0  # how often streams with pending SETs are looked for


class _Endpoint:
    def __init__(self, policy: PushPolicy, now: float) -> None:
        self.slots = asyncio.Semaphore(policy.endpoint_concurrency)
        self.bucket = TokenBucket.full(policy.endpoint_rate, policy.endpoint_burst, now)


class PushDispatcher:
    def __init__(
        self,
        store: Store,
        sender: PushSender,
        *,
        policy: PushPolicy,
        pause: PauseStream,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        sleeper: Sleeper = real_sleep,
        holder: str | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.policy = policy
        self.pause = pause
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.sleeper = sleeper
        self.holder = holder or uuid.uuid4().hex
        self._workers: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._pokes: dict[str, int] = {}  # wake() calls per stream: new SETs or a status change
        self._leased: set[str] = set()  # streams whose lease a worker of ours took
        self._endpoints: dict[str, _Endpoint] = {}
        self._in_flight = asyncio.Semaphore(policy.max_in_flight)
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = False
        self._store_down = False

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="push-sweep")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [task for task, _ in self._workers.values()]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def sweep(self) -> None:
        """Start workers for every stream with pending SETs (after a restart, or a lease
        another replica let expire)."""
        for stream_id in await self.store.streams_with_pending():
            self.wake(stream_id)

    async def _sweep_forever(self) -> None:
        never = asyncio.Event()
        while not self._stopping:
            await self.sleeper(self.policy.sweep_interval, never)
            try:
                await self.sweep()
            except Exception as exc:
                if not is_store_outage(exc):
                    log.exception("push sweep failed; retrying at the next interval")
                elif not self._store_down:  # one line per outage, not one per sweep
                    log.warning("push sweep: store unreachable (%s); retrying", describe_outage(exc))
                self._store_down = is_store_outage(exc)
            else:
                self._store_down = False

    def wake(self, stream_id: str) -> None:
        """New work (or a status change) on a stream: make sure a worker looks at it."""
        if self._stopping:
            return
        self._pokes[stream_id] = self._pokes.get(stream_id, 0) + 1
        current = self._workers.get(stream_id)
        if current is not None:
            current[1].set()
            return
        event = asyncio.Event()
        task = asyncio.create_task(self._run(stream_id, event), name=f"push-{stream_id}")
        self._workers[stream_id] = (task, event)

    @property
    def active_streams(self) -> int:
        return len(self._workers)

    # -- one stream --------------------------------------------------------------------------------
    async def _run(self, stream_id: str, wake: asyncio.Event) -> None:
        lease = f"push:{stream_id}"
        try:
            await self._work(stream_id, lease, wake)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_store_outage(exc):  # the SETs stay queued; the sweep restarts this worker
                log.warning("push worker for stream %s stopped: %s", stream_id, describe_outage(exc))
            else:
                log.exception("push worker for stream %s failed; the sweep restarts it", stream_id)
        finally:
            self._workers.pop(stream_id, None)
            self._pokes.pop(stream_id, None)
            if stream_id in self._leased:
                self._leased.discard(stream_id)
                with contextlib.suppress(Exception):
                    await self.store.release_lease(lease, self.holder)
            if wake.is_set() and not self._stopping:
                self.wake(stream_id)  # woken while shutting down: start again

    async def _work(self, stream_id: str, lease: str, wake: asyncio.Event) -> None:
        # Every SET queued wakes this, poll streams' too: look before taking the lease, so a
        # poll stream costs one (cached) read and no lease writes.
        if not _pushes(await self.store.get_stream(stream_id)):
            return
        while not self._stopping:
            if not await self.store.acquire_lease(
                lease, self.holder, now=self.clock(), ttl=self.policy.lease_ttl
            ):
                return  # another worker (or replica) has it
            self._leased.add(stream_id)
            stream = await self.store.get_stream(stream_id)
            if not _pushes(stream):
                return
            # Paused or disabled: only stream-updated announcements go out (R-STATUS-7).
            control_only = stream.status is not Status.ENABLED
            wake.clear()
            items = await self.store.pending(stream_id, self.policy.batch, control_only=control_only)
            if not items:
                await self.sleeper(self.policy.idle_exit, wake)
                if not wake.is_set():
                    return
                continue
            wait = await self._deliver(stream, items, lease)
            if wait > 0:
                await self.sleeper(min(wait, self.policy.lease_ttl / 2), wake)

    async def _deliver(self, stream: Stream, items: list[QueuedSet], lease: str | None = None) -> float:
        """Send ``items`` in order; returns how long until the blocked head may be retried (0 = go on)."""
        url = stream.delivery.endpoint_url
        assert url is not None
        health = before = await self.store.get_health(stream.stream_id)
        delivered: list[Attempt] = []
        pokes = self._pokes.get(stream.stream_id, 0)
        renew_at = self.clock() + self.policy.lease_ttl / 3
        try:
            for item in items:
                due = item.next_attempt_at - self.clock()
                if due > 0:
                    return due
                if lease is not None and self.clock() >= renew_at:
                    # A slow batch must not outlive the lease: another replica would then send
                    # the same stream at the same time, out of order.
                    if not await self.store.acquire_lease(
                        lease, self.holder, now=self.clock(), ttl=self.policy.lease_ttl
                    ):
                        return 0.0
                    renew_at = self.clock() + self.policy.lease_ttl / 3
                if self._pokes.get(stream.stream_id, 0) != pokes:
                    # Woken mid-batch: if the stream was paused, disabled, re-pointed or
                    # deleted meanwhile, stop here and start over from the store (R-STATUS-5).
                    pokes = self._pokes.get(stream.stream_id, 0)
                    fresh = await self.store.get_stream(stream.stream_id)
                    if (
                        fresh is None
                        or fresh.status is not stream.status
                        or fresh.delivery != stream.delivery
                    ):
                        return 0.0
                result = await self._send(url, item, stream.delivery.authorization_header)
                now = self.clock()
                outcome = result.outcome
                ok = outcome.kind is OutcomeKind.DELIVERED
                error = _describe(outcome.status, outcome.err, outcome.description, outcome.error)
                attempt = Attempt(
                    stream.stream_id,
                    item.jti,
                    now,
                    outcome.kind.value,
                    outcome.status,
                    None if ok else error,  # a failed attempt's trace says why, err and description too
                    result.latency_ms,
                )
                if ok:
                    delivered.append(attempt)
                    health = after_success(health, now)
                    continue
                await self._flush(stream.stream_id, delivered)
                if outcome.kind is OutcomeKind.PERMANENT:
                    # The receiver refused this SET for good (R-PUSH-6): record it, go on with the next.
                    await self.store.complete(
                        stream.stream_id, [item.jti], at=now, state=DeliveryState.FAILED, attempts=[attempt]
                    )
                    health = replace(health, last_error=error, last_error_at=now)
                    continue
                delay, exhausted = self.policy.schedule.next_delay(
                    item.attempts + 1, self.rng, retry_after=outcome.retry_after
                )
                await self.store.record_attempt(attempt, next_attempt_at=now + delay, last_error=error)
                auth = outcome.kind is OutcomeKind.AUTH_RETRY
                health = after_failure(health, now, error, auth=auth, exhausted=exhausted)
                if stream.status is Status.ENABLED and should_pause(health, now, self.policy.pause_after):
                    await self._save_health(stream.stream_id, before, health)
                    before = health
                    await self.pause(stream, "delivery failing: " + error)
                return delay
            return 0.0
        finally:
            await self._flush(stream.stream_id, delivered)
            await self._save_health(stream.stream_id, before, health)

    async def _send(self, url: str, item: QueuedSet, authorization: str | None) -> PushResult:
        endpoint = self._endpoints.get(url)
        if endpoint is None:
            endpoint = self._endpoints[url] = _Endpoint(self.policy, self.clock())
        never = asyncio.Event()
        while (wait := endpoint.bucket.take(self.clock())) > 0:
            await self.sleeper(wait, never)
        async with self._in_flight, endpoint.slots:
            return await self.sender.send(url, item.set_jwt, authorization)

    async def _flush(self, stream_id: str, delivered: list[Attempt]) -> None:
        if delivered:
            batch = list(delivered)
            delivered.clear()
            await self.store.complete(stream_id, [a.jti for a in batch], at=batch[-1].at, attempts=batch)

    async def _save_health(self, stream_id: str, before: DeliveryHealth, after: DeliveryHealth) -> None:
        # A success right after a success only moves last_success_at: write it at most every 5 s.
        if after == before:
            return
        quiet = replace(after, last_success_at=before.last_success_at)
        if quiet == before and (after.last_success_at or 0) - (before.last_success_at or 0) < 5:
            return
        await self.store.save_health(stream_id, after)


def _describe(status: int | None, err: str | None, description: str | None, error: str | None) -> str:
    if status is None:
        return error or "network error"
    text = f"HTTP {status}"
    if err:
        text += f" {err}"
    if error:  # our own note (a redirect not followed) before the receiver's text
        text += f": {error}"
    if description:
        text += f" ({description})" if error else f": {description}"
    return text[:300]


def _pushes(stream: Stream | None) -> TypeGuard[Stream]:
    """A stream this dispatcher delivers: push, with an endpoint."""
    return stream is not None and stream.delivery.method == PUSH_METHOD and bool(stream.delivery.endpoint_url)
