"""One push stream's delivery while this process holds the stream's lease: several SETs on
the wire at once (``push_stream_in_flight``), one per lane (:mod:`hub.delivery.push.lanes`).

Durability is the single-SET design's, per lane: a SET leaves the queue only once its 2xx
is committed; the 2xx of a lane's SET k is committed while SET k+1 may be on the wire, and
before SET k+2 goes out. Successes are committed in groups (one store write for the 2xx
that arrived while the previous write was running). So a crash resends at most two SETs per
lane, and at most ``2 * push_stream_in_flight`` per stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING

from hub import metrics
from hub.core.health import DeliveryHealth, after_failure, after_success, should_pause
from hub.core.model import Attempt, DeliveryState, QueuedSet, Status, Stream
from hub.core.outcome import OutcomeKind
from hub.delivery.push.lanes import Lanes, PushOrder
from hub.delivery.wakeup import wait_for

if TYPE_CHECKING:
    from hub.delivery.push.dispatcher import PushDispatcher

UNSETTLED_PER_LANE = 2  # SETs of one lane on the wire or answered but not yet committed


class RunEnd(Enum):
    IDLE = "idle"  # nothing left to send for a while: the worker may stop
    RESTART = "restart"  # the stream changed (or its lease needs taking again): start over


class StreamRun:
    """Sends one stream's queued SETs until it is idle or changed; see the module doc."""

    def __init__(
        self,
        dispatcher: PushDispatcher,
        stream: Stream,
        lease: str | None,
        wake: asyncio.Event,
        *,
        control_only: bool,
    ) -> None:
        self.d = dispatcher
        self.stream = stream
        self.sid = stream.stream_id
        self.lease = lease
        self.wake = wake  # set by the dispatcher (new SETs, a status change) and by our own tasks
        self.control_only = control_only
        policy = dispatcher.policy
        self.limit = max(1, policy.stream_in_flight)
        self.lanes = Lanes(policy.order)
        self.in_flight: dict[str, str] = {}  # jti -> lane key, a request on the wire
        self.tasks: set[asyncio.Task[None]] = set()
        self.unsettled: Counter[str] = Counter()  # per lane: on the wire or uncommitted 2xx
        self.answered: set[str] = set()  # 2xx not yet committed: no longer in any lane
        self.to_commit: list[tuple[str, str, Attempt]] = []
        self.committer: asyncio.Task[None] | None = None
        self.reading: dict[str, QueuedSet | None] | None = None  # settled during a queue read
        self.more = True  # the queue may hold SETs not read yet
        self.poked = False  # woken (new SETs) since the last read
        self.taken = 0  # SETs sent since the last read
        self.next_scan_at = 0.0
        self.scan_every = dispatcher.policy.scan_interval
        self.pokes = 0  # the dispatcher's wake-up count for this stream, as last seen
        self.renew_at = 0.0
        self.stopping = False  # no more sends: the stream changed, was paused or the lease lost
        self.failure: BaseException | None = None
        self.health = self.saved = DeliveryHealth()
        self.pausing = False

    # -- the loop -----------------------------------------------------------------------------------
    async def run(self) -> RunEnd:
        d = self.d
        self.health = self.saved = await d.store.get_health(self.sid)
        self.pokes = d._pokes.get(self.sid, 0)
        self.renew_at = d.clock() + d.policy.lease_ttl / 3
        first = True
        try:
            while True:
                self.wake.clear()
                if self.failure is not None:
                    raise self.failure
                if not self.stopping:
                    await self._look_around()
                if self.stopping:
                    await self._drain()
                    await self._save_health()
                    return RunEnd.RESTART
                busy = self._busy()
                room = self._room()
                if room and (first or self._should_read(d.clock(), busy)):
                    await self._read()
                    first = False
                    continue  # tasks may have finished during the read: look again
                self._dispatch(busy)
                wait = self._wait(d.clock(), busy)
                if self.tasks or self.committer is not None:
                    await wait_for(self.wake, d.policy.lease_ttl / 3 if wait is None else wait)
                    continue
                await self._save_health()
                if wait is None:  # nothing queued, nothing on the wire
                    await d.sleeper(d.policy.idle_exit, self.wake)
                    if not self.wake.is_set():
                        return RunEnd.IDLE
                    continue
                await d.sleeper(wait, self.wake)
        finally:
            await self._stop_tasks()

    async def _stop_tasks(self) -> None:
        """Cut what is still on the wire (the SETs stay queued) and keep the delivery health."""
        for task in self.tasks:
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.committer is not None:  # fewer resends: let the 2xx already answered be stored
            await asyncio.wait({self.committer}, timeout=5.0)
        with contextlib.suppress(Exception):  # the store may be what failed
            await self._save_health()

    def _dispatch(self, busy: set[str]) -> None:
        """Send what may go now, up to the room there is."""
        while self._room() and (taken := self.lanes.take(self.d.clock(), busy)) is not None:
            self._start(*taken)
            busy.add(taken[0])

    async def _look_around(self) -> None:
        """Renew the lease when due, and take in a wake-up: new SETs, or the stream paused,
        disabled, re-pointed or deleted meanwhile; then stop sending and start over from the
        store (R-STATUS-5)."""
        d = self.d
        if self.lease is not None and d.clock() >= self.renew_at:
            # A slow backlog must not outlive the lease: another replica would then send the
            # same stream at the same time, out of order.
            ttl = d.policy.lease_ttl
            if not await d.store.acquire_lease(self.lease, d.holder, now=d.clock(), ttl=ttl):
                self.stopping = True
                return
            self.renew_at = d.clock() + ttl / 3
        if d._pokes.get(self.sid, 0) != self.pokes:
            self.pokes = d._pokes.get(self.sid, 0)
            self.more = self.poked = True
            fresh = await d.store.get_stream(self.sid)
            if (
                fresh is None
                or fresh.status is not self.stream.status
                or fresh.delivery != self.stream.delivery
            ):
                self.stopping = True

    def _should_read(self, now: float, busy: set[str]) -> bool:
        """Whether to read the queue again. At once when what we hold runs low and something
        was sent or queued since; else, while the queue holds more than we read and nothing we
        hold may go, every ``scan_interval`` (a SET of another subject may be further back)."""
        if not self.more:
            return False
        thin = len(self.lanes) < max(1, self.d.policy.batch // 2)
        if thin and (self.taken or self.poked or not len(self.lanes)):
            return True
        # Under stream order everything is one lane: what lies further back cannot go first.
        scan = self.lanes.order is not PushOrder.STREAM and now >= self.next_scan_at
        return scan and not self._ready(now, busy)

    def _room(self) -> bool:
        unsettled = sum(self.unsettled.values())
        return len(self.in_flight) < self.limit and unsettled < 2 * self.limit

    def _busy(self) -> set[str]:
        """Lanes that may not send now: one on the wire, or two SETs not yet settled."""
        busy = set(self.in_flight.values())
        busy.update(key for key, n in self.unsettled.items() if n >= UNSETTLED_PER_LANE)
        return busy

    def _ready(self, now: float, busy: set[str]) -> bool:
        due = self.lanes.next_due(busy)
        return due is not None and due <= now

    def _wait(self, now: float, busy: set[str]) -> float | None:
        """How long until something may change without a wake-up: a lane falls due, the lease
        needs renewing, the queue is due another look. None: nothing to wait for at all."""
        waits = []
        if self.lease is not None and (self.tasks or len(self.lanes)):
            waits.append(self.renew_at - now)
        due = self.lanes.next_due(busy)
        if due is not None and self._room():
            waits.append(due - now)
        if self.more and self.lanes.order is not PushOrder.STREAM and not self._ready(now, busy):
            waits.append(self.next_scan_at - now)
        if not waits:
            return None
        return max(min(waits), 0.001)

    async def _drain(self) -> None:
        """Let the requests on the wire finish and their outcomes be stored."""
        while self.tasks or self.committer is not None:
            if self.failure is not None:
                raise self.failure
            self.wake.clear()
            await wait_for(self.wake, 1.0)
        if self.failure is not None:
            raise self.failure

    async def _read(self) -> None:
        """Re-read the head of the queue: new SETs, and the store's view of the waiting ones
        (a stream enabled again makes them due at once)."""
        d = self.d
        known = len(self.in_flight) + len(self.answered) + len(self.lanes)
        limit = max(d.policy.batch, min(known + d.policy.batch, d.policy.lookahead))
        settled: dict[str, QueuedSet | None] = {}
        self.reading = settled
        try:
            items = await d.store.pending(self.sid, limit, control_only=self.control_only)
            self.more = len(items) >= limit
        finally:
            self.reading = None
        self.taken, self.poked = 0, False
        fresh = []
        for item in items:
            if item.jti in self.in_flight or item.jti in self.answered:
                continue
            if item.jti in settled:  # finished or retried while the read was on its way
                later = settled[item.jti]
                if later is None:
                    continue
                item = later
            fresh.append(item)
        self.lanes.reset(fresh, keep_keys=self.in_flight)
        # A look further back that finds nothing new to send waits twice as long next time
        # (up to a second): a long-blocked subject must not cost a large read every 50 ms.
        ready = self._ready(d.clock(), self._busy())
        self.scan_every = d.policy.scan_interval if ready else min(2 * self.scan_every, 1.0)
        self.next_scan_at = d.clock() + self.scan_every

    # -- one SET ------------------------------------------------------------------------------------
    def _start(self, key: str, item: QueuedSet) -> None:
        self.in_flight[item.jti] = key
        self.unsettled[key] += 1
        self.taken += 1
        task = asyncio.create_task(self._push(key, item), name=f"push-{self.sid}-{item.jti}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()
        self.wake.set()

    def _settled(self, key: str, jti: str, again: QueuedSet | None) -> None:
        self.unsettled[key] -= 1
        if self.unsettled[key] <= 0:
            del self.unsettled[key]
        if self.reading is not None:
            self.reading[jti] = again
        if again is None:
            self.lanes.forget(jti)

    async def _push(self, key: str, item: QueuedSet) -> None:
        d, stream = self.d, self.stream
        url = stream.delivery.endpoint_url
        assert url is not None
        try:
            if d.refresh is not None:  # a SET held across a key retired at once is signed again
                (item,) = await d.refresh([item])
            result = await d._send(url, item, stream.delivery.authorization_header)
        except BaseException:
            self.in_flight.pop(item.jti, None)
            self._settled(key, item.jti, item)
            raise
        now = d.clock()
        outcome = result.outcome
        metrics.PUSH_ATTEMPTS.labels(outcome.kind.value).inc()
        metrics.PUSH_ATTEMPT_SECONDS.observe(result.latency_ms / 1000)
        ok = outcome.kind is OutcomeKind.DELIVERED
        error = d.describe(outcome)
        # A failed attempt's trace says why, err and description too.
        attempt = Attempt(
            self.sid,
            item.jti,
            now,
            outcome.kind.value,
            outcome.status,
            None if ok else error,
            result.latency_ms,
        )
        if ok:
            self.in_flight.pop(item.jti)
            self.answered.add(item.jti)
            self.to_commit.append((key, item.jti, attempt))
            if self.committer is None:
                self.committer = asyncio.create_task(self._commit(), name=f"push-commit-{self.sid}")
            self.health = after_success(self.health, now)
            metrics.SETS_DELIVERED.labels("push").inc()
            if item.queued_at:
                metrics.DELIVERY_LATENCY.labels("push").observe(max(0.0, now - item.queued_at))
            return
        try:
            if outcome.kind is OutcomeKind.PERMANENT:
                # The receiver refused this SET for good (R-PUSH-6): record it, go on with the next.
                await d.store.complete(
                    self.sid, [item.jti], at=now, state=DeliveryState.FAILED, attempts=[attempt]
                )
                self.health = replace(self.health, last_error=error, last_error_at=now)
                metrics.SETS_FAILED.labels("push").inc()
                d.log_attempt(stream, url, item, outcome.kind.value, error, next_retry_at=None)
                self.in_flight.pop(item.jti)
                self._settled(key, item.jti, None)
                return
            delay, exhausted = d.policy.schedule.next_delay(
                item.attempts + 1, d.rng, retry_after=outcome.retry_after
            )
            d.log_attempt(stream, url, item, outcome.kind.value, error, next_retry_at=now + delay)
            await d.store.record_attempt(attempt, next_attempt_at=now + delay, last_error=error)
        except BaseException:
            self.in_flight.pop(item.jti, None)
            self._settled(key, item.jti, item)
            raise
        # The rest of this lane waits for it; other lanes go on.
        again = replace(item, attempts=item.attempts + 1, next_attempt_at=now + delay)
        self.in_flight.pop(item.jti)
        self.lanes.put_back(again)
        self._settled(key, item.jti, again)
        auth = outcome.kind is OutcomeKind.AUTH_RETRY
        self.health = after_failure(self.health, now, error, auth=auth, exhausted=exhausted)
        if (
            stream.status is Status.ENABLED
            and not self.pausing
            and should_pause(self.health, now, d.policy.pause_after)
        ):
            self.pausing = self.stopping = True
            self.saved = await d.save_health(self.sid, self.saved, self.health)
            await d.pause(stream, "delivery failing: " + error)

    async def _commit(self) -> None:
        """Commit the 2xx that came in, in groups, until none is left."""
        try:
            while self.to_commit:
                group, self.to_commit = self.to_commit, []
                attempts = [attempt for _, _, attempt in group]
                await self.d.store.complete(
                    self.sid, [jti for _, jti, _ in group], at=attempts[-1].at, attempts=attempts
                )
                for key, jti, _ in group:
                    self.answered.discard(jti)
                    self._settled(key, jti, None)
                self.wake.set()
        except Exception as exc:
            # Not re-raised: nobody awaits this task, and an exception left in it would be
            # logged as a traceback ("Task exception was never retrieved") on a store outage.
            if self.failure is None:
                self.failure = exc
        finally:
            self.committer = None
            self.wake.set()

    async def _save_health(self) -> None:
        self.saved = await self.d.save_health(self.sid, self.saved, self.health)
