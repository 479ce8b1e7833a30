"""RFC 8936 poll delivery: acknowledge, record errors, then return pending SETs,
holding a long poll until a SET is queued for the stream or the time limit passes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from hub import metrics
from hub.core.model import DeliveryState, QueuedSet, Status, Stream
from hub.core.poll import PollRequest, poll_response
from hub.delivery.wakeup import QueueSignal, wait_for
from hub.store.base import Store

HANDED_KEPT = 100_000

# Re-signs SETs whose key was retired at once (Transmitter.resign_retired).
Refresh = Callable[[list[QueuedSet]], Awaitable[list[QueuedSet]]]


class PollDelivery:
    def __init__(
        self,
        store: Store,
        signal: QueueSignal,
        *,
        long_poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        refresh: Refresh | None = None,
    ) -> None:
        self.store = store
        self.refresh = refresh
        # jti -> queued_at of SETs handed to pollers, so an ack can time emit -> acknowledged.
        # Bounded; an ack that reaches another replica is simply not timed.
        self._handed: OrderedDict[str, float] = OrderedDict()
        self.signal = signal
        self.long_poll_seconds = long_poll_seconds
        self.clock = clock
        self.wall_clock = wall_clock

    async def poll(self, stream: Stream, request: PollRequest) -> dict[str, Any]:
        """Acknowledge, then answer: at once when SETs are pending (or ``returnImmediately``),
        else once one is queued or the long poll's time is up."""
        await self.acknowledge(stream.stream_id, request)
        answer = await self.answer_now(stream, request)
        return answer if answer is not None else await self.wait(stream, request)

    async def acknowledge(self, sid: str, request: PollRequest) -> None:
        """Take the ``ack`` and ``setErrs`` out of the queue (before any wait)."""
        now = self.wall_clock()
        if request.ack:
            metrics.SETS_DELIVERED.labels("poll").inc(await self.store.complete(sid, request.ack, at=now))
            for jti in request.ack:
                queued_at = self._handed.pop(jti, None)
                if queued_at:
                    metrics.DELIVERY_LATENCY.labels("poll").observe(max(0.0, now - queued_at))
        if request.set_errs:
            # R-POLL-5: a SET reported in setErrs has been received; it leaves the queue.
            await self.store.record_set_errors(sid, request.set_errs, now)
            failed = await self.store.complete(
                sid, request.set_errs.keys(), at=now, state=DeliveryState.FAILED
            )
            metrics.SETS_FAILED.labels("poll").inc(failed)

    async def answer_now(self, stream: Stream, request: PollRequest) -> dict[str, Any] | None:
        """The answer when it needs no wait (SETs pending, ``returnImmediately`` or
        ``maxEvents: 0``), else None: a busy receiver's polls are answered here, without the
        tasks and timer a long poll takes."""
        if request.max_events == 0:
            return poll_response([], False)
        # R-STATUS-5/6 + R-STATUS-9: a paused or disabled stream answers 200 with its held
        # SETs withheld; only stream-updated announcements go out.
        control_only = stream.status is not Status.ENABLED
        items = await self.store.pending(stream.stream_id, request.max_events + 1, control_only=control_only)
        if items or request.return_immediately:
            return await self._hand_out(items, request)
        return None

    async def wait(self, stream: Stream, request: PollRequest) -> dict[str, Any]:
        """Hold the poll until a SET is queued for the stream or the time limit passes."""
        sid = stream.stream_id
        control_only = stream.status is not Status.ENABLED
        deadline = self.clock() + self.long_poll_seconds
        while True:
            # Taken before the read: a SET queued between the read and the wait still wakes it.
            waiter = self.signal.waiter(sid)
            items = await self.store.pending(sid, request.max_events + 1, control_only=control_only)
            if items:
                break
            metrics.LONG_POLLS_HELD.inc()
            try:
                woken = await wait_for(waiter, deadline - self.clock())
            finally:
                metrics.LONG_POLLS_HELD.dec()
            if not woken:
                break
            # Woken: the stream may have been paused, resumed or deleted meanwhile.
            fresh = await self.store.get_stream(sid)
            if fresh is None:
                return poll_response([], False)
            control_only = fresh.status is not Status.ENABLED
        return await self._hand_out(items, request)

    async def _hand_out(self, items: list[QueuedSet], request: PollRequest) -> dict[str, Any]:
        more = len(items) > request.max_events
        items = items[: request.max_events]
        if self.refresh is not None:
            items = await self.refresh(items)
        for item in items:
            self._handed[item.jti] = item.queued_at
        while len(self._handed) > HANDED_KEPT:
            self._handed.popitem(last=False)
        return poll_response(items, more)
