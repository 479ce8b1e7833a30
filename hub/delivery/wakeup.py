"""Wakes long polls the moment a SET is queued for their stream (no sleep loops).

A poller takes a :meth:`QueueSignal.waiter` *before* it reads the queue, so an event
queued between the read and the wait still wakes it. The signal itself is in-process;
with several replicas on Redis, :mod:`hub.delivery.wakeup_redis` relays every :meth:`notify` to
the other replicas, which apply it with :meth:`notify_local`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence


class QueueSignal:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._relays: list[Callable[[Sequence[str]], None]] = []

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(stream_id)`` whenever a stream gets work (the push dispatcher)."""
        self._listeners.append(listener)

    def relay_to(self, relay: Callable[[Sequence[str]], None]) -> None:
        """Also hand every :meth:`notify` to ``relay`` (carries it to other replicas)."""
        self._relays.append(relay)

    def waiter(self, stream_id: str) -> asyncio.Event:
        event = self._events.get(stream_id)
        if event is None:
            event = self._events[stream_id] = asyncio.Event()
        return event

    def notify(self, stream_ids: Iterable[str]) -> None:
        """Work was queued (or a status changed) here: wake this process, then the others."""
        ids = list(stream_ids)
        self.notify_local(ids)
        for relay in self._relays:
            relay(ids)

    def notify_local(self, stream_ids: Iterable[str]) -> None:
        """Wake this process's long polls and push workers only (a relayed notification)."""
        for stream_id in stream_ids:
            event = self._events.pop(stream_id, None)
            if event is not None:
                event.set()
            for listener in self._listeners:
                listener(stream_id)

    @property
    def waiting_streams(self) -> int:
        return len(self._events)

    def waiting_stream_ids(self) -> list[str]:
        """Streams with a long poll waiting here (woken after a missed relay, to re-read)."""
        return list(self._events)


async def wait_for(event: asyncio.Event, seconds: float) -> bool:
    """True if ``event`` was set within ``seconds``."""
    if seconds <= 0:
        return event.is_set()
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
