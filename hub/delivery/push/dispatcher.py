"""The push engine: one worker per stream with pending SETs.

A worker holds the stream's lease (so one replica, one process, one task pushes a
stream at a time) and sends up to ``stream_in_flight`` SETs at once, one per lane
(:mod:`hub.delivery.push.worker`): per subject by default, or the whole stream in queue
order. On a retryable failure the SET blocks the ones behind it in its lane only, until
the retry schedule says to try again. SETs leave the queue only on a 2xx or a permanent
refusal, so a crash mid-delivery means a resend, never a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeGuard
from urllib.parse import urlsplit

from hub import logs
from hub.core.health import DeliveryHealth
from hub.core.model import PUSH_METHOD, QueuedSet, Status, Stream
from hub.core.outcome import Outcome
from hub.core.ratelimit import TokenBucket
from hub.core.retry import RetrySchedule
from hub.delivery.polling import Refresh
from hub.delivery.push.lanes import PushOrder
from hub.delivery.push.sender import PushResult, PushSender
from hub.delivery.push.worker import RunEnd, StreamRun
from hub.delivery.wakeup import wait_for
from hub.store.base import Store, lease_holder
from hub.store.outages import describe_outage, is_store_outage

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
    endpoint_concurrency: int = 16  # requests in flight to one endpoint_url
    endpoint_rate: float = 1000.0  # SETs per second to one endpoint_url (0 = no cap)
    endpoint_burst: float = 1000.0
    max_in_flight: int = 200  # requests in flight from this process
    stream_in_flight: int = 16  # requests in flight to one stream (one per lane)
    order: PushOrder = PushOrder.SUBJECT
    lookahead: int = 1000  # SETs read ahead of the queue's head to find lanes that may send
    scan_interval: float = 0.05  # while nothing held may go, look further back this often
    lease_ttl: float = 30.0
    idle_exit: float = 30.0  # a worker with nothing to send stops after this long
    sweep_interval: float = 5.0  # how often streams with pending SETs are looked for
    # After failing to take a stream's lease, leave the stream to its holder this long: every
    # SET queued wakes every replica and process, and each try at the lease is a store write.
    held_elsewhere: float = 1.0


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
        refresh: Refresh | None = None,
    ) -> None:
        self.store = store
        self.refresh = refresh  # re-signs SETs whose key was retired at once
        self.sender = sender
        self.policy = policy
        self.pause = pause
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.sleeper = sleeper
        self.holder = holder or lease_holder()
        self._workers: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._pokes: dict[str, int] = {}  # wake() calls per stream: new SETs or a status change
        self._leased: set[str] = set()  # streams whose lease a worker of ours took
        self._elsewhere: dict[str, float] = {}  # stream -> until when another holder is assumed
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
        now = self.clock()
        self._elsewhere = {sid: until for sid, until in self._elsewhere.items() if until > now}
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
            now = self.clock()
            if self._elsewhere.get(stream_id, now) > now:
                return  # its holder (another replica or process) is woken by the same SETs
            if not await self.store.acquire_lease(lease, self.holder, now=now, ttl=self.policy.lease_ttl):
                self._elsewhere[stream_id] = now + self.policy.held_elsewhere
                return  # another worker (or replica) has it
            self._elsewhere.pop(stream_id, None)
            self._leased.add(stream_id)
            stream = await self.store.get_stream(stream_id)
            if not _pushes(stream):
                return
            # Paused or disabled: only stream-updated announcements go out (R-STATUS-7).
            control_only = stream.status is not Status.ENABLED
            run = StreamRun(self, stream, lease, wake, control_only=control_only)
            if await run.run() is RunEnd.IDLE:
                return

    async def _send(self, url: str, item: QueuedSet, authorization: str | None) -> PushResult:
        endpoint = self._endpoints.get(url)
        if endpoint is None:
            endpoint = self._endpoints[url] = _Endpoint(self.policy, self.clock())
        never = asyncio.Event()
        while (wait := endpoint.bucket.take(self.clock())) > 0:
            await self.sleeper(wait, never)
        async with self._in_flight, endpoint.slots:
            return await self.sender.send(url, item.set_jwt, authorization)

    async def save_health(self, stream_id: str, saved: DeliveryHealth, now: DeliveryHealth) -> DeliveryHealth:
        """Store ``now`` if it differs from ``saved`` (what the store has); returns what the
        store has afterwards. A success right after a success only moves last_success_at:
        that is written at most every 5 s."""
        if now == saved:
            return saved
        quiet = replace(now, last_success_at=saved.last_success_at)
        if quiet == saved and (now.last_success_at or 0) - (saved.last_success_at or 0) < 5:
            return saved
        await self.store.save_health(stream_id, now)
        return now

    @staticmethod
    def describe(outcome: Outcome) -> str:
        return _describe(outcome.status, outcome.err, outcome.description, outcome.error)

    @staticmethod
    def log_attempt(
        stream: Stream, url: str, item: QueuedSet, outcome: str, error: str, *, next_retry_at: float | None
    ) -> None:
        _log_attempt(stream, url, item, outcome, error, next_retry_at=next_retry_at)


def _log_attempt(
    stream: Stream, url: str, item: QueuedSet, outcome: str, error: str, *, next_retry_at: float | None
) -> None:
    """One line per failed push attempt (hub.logs): who, where, which try, what next."""
    retry = None
    if next_retry_at is not None:
        retry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(next_retry_at))
    logs.event(
        log,
        logging.WARNING,
        "push_attempt_failed",
        stream_id=stream.stream_id,
        host=urlsplit(url).hostname,
        attempt=item.attempts + 1,
        outcome=outcome,
        error=error,
        next_retry_at=retry,
        jti=item.jti,
    )


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
