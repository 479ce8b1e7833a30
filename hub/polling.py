"""RFC 8936 poll delivery: acknowledge, record errors, then return pending SETs,
holding a long poll until a SET is queued for the stream or the time limit passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hub.core.model import DeliveryState, Status, Stream
from hub.core.poll import PollRequest, poll_response
from hub.store.base import Store
from hub.wakeup import QueueSignal, wait_for


class PollDelivery:
    def __init__(
        self,
        store: Store,
        signal: QueueSignal,
        *,
        long_poll_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.signal = signal
        self.long_poll_seconds = long_poll_seconds
        self.clock = clock
        self.wall_clock = wall_clock

    async def poll(self, stream: Stream, request: PollRequest) -> dict[str, Any]:
        sid = stream.stream_id
        now = self.wall_clock()
        if request.ack:
            await self.store.complete(sid, request.ack, at=now)
        if request.set_errs:
            # R-POLL-5: a SET reported in setErrs has been received; it leaves the queue.
            await self.store.record_set_errors(sid, request.set_errs, now)
            await self.store.complete(sid, request.set_errs.keys(), at=now, state=DeliveryState.FAILED)
        if request.max_events == 0:
            return poll_response([], False)
        # R-STATUS-5/6 + R-STATUS-9: a paused or disabled stream answers 200 with its held
        # SETs withheld; only stream-updated announcements go out.
        control_only = stream.status is not Status.ENABLED
        deadline = self.clock() + (0.0 if request.return_immediately else self.long_poll_seconds)
        while True:
            waiter = self.signal.waiter(sid)
            items = await self.store.pending(sid, request.max_events + 1, control_only=control_only)
            if items or request.return_immediately:
                break
            if not await wait_for(waiter, deadline - self.clock()):
                break
            # Woken: the stream may have been paused, resumed or deleted meanwhile.
            fresh = await self.store.get_stream(sid)
            if fresh is None:
                return poll_response([], False)
            control_only = fresh.status is not Status.ENABLED
        more = len(items) > request.max_events
        return poll_response(items[: request.max_events], more)
