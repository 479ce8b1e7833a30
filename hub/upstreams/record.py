"""What an upstream link records: its state in the store, each change logged and counted.

:class:`LinkRecord` is the part of :class:`~hub.upstreams.link.UpstreamLink` that writes the
upstream's :class:`~hub.core.upstreams.UpstreamState`: health changes (``upstream_link_state``),
failures, adaptations to a transmitter's deviations (``upstream_adapted``), a refused
re-enable (``upstream_reenable_refused``), and the time of the last event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hub import logs, metrics
from hub.core.upstreams import Health, Upstream, UpstreamState
from hub.errors import HubError
from hub.store.base import Store
from hub.upstreams.errors import describe
from receivers.client import StreamConfig
from receivers.errors import TransmitterError

log = logging.getLogger("hub.upstreams")

EVENT_SAVE_INTERVAL = 1.0  # last_event_at reaches the store at most this often per upstream


class LinkRecord:
    def __init__(self, upstream: Upstream, *, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.upstream = upstream
        self.state = upstream.state
        self.store = store
        self.clock = clock
        self._event_save: asyncio.Task[None] | None = None  # held: a loose task may be collected
        self._event_saved_at = 0.0

    @property
    def upstream_id(self) -> str:
        return self.upstream.upstream_id

    def owns(self, iss: str, stream_id: str | None) -> bool:
        if self.state.issuer is None or self.state.issuer.rstrip("/") != iss.rstrip("/"):
            return False
        return stream_id is None or stream_id == self.state.stream_id

    def set_refused(self, error: str) -> None:
        """A polled SET was refused (reported in setErrs): an error to show, not a broken link."""
        self.state = replace(self.state, last_error=error, last_error_at=self.clock())

    def event_seen(self) -> None:
        """An event from this upstream arrived; its time reaches the store within a second."""
        now = self.clock()
        self.state = replace(self.state, last_event_at=now)
        if self._event_save is None:
            delay = max(0.0, self._event_saved_at + EVENT_SAVE_INTERVAL - now)
            self._event_save = asyncio.get_running_loop().create_task(self._save_event_time(delay))

    async def _save_event_time(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._event_save = None
        self._event_saved_at = self.clock()
        await self._save(self.state)

    async def _failed(self, exc: BaseException) -> None:
        error = describe(exc)
        log.warning("upstream %s failed: %s", self.upstream_id, error)
        await self._save(self.state.failed(error, self.clock()))

    def _adapt(self, kind: str, note: str, **details: Any) -> None:
        """The link worked around a transmitter's deviation: say so (log, metric, state)."""
        metrics.UPSTREAM_ADAPTATIONS.labels(kind).inc()
        logs.event(
            log,
            logging.WARNING,
            "upstream_adapted",
            upstream_id=self.upstream_id,
            kind=kind,
            note=note,
            **details,
        )
        self.state = self.state.adapted(note)

    async def _reenable_refused(
        self, stream: StreamConfig, status: str, reason: str | None, exc: TransmitterError
    ) -> None:
        """The transmitter will not enable the stream again: no events come, and the operator
        must hear of it (degraded, with the peer's reason) rather than see retries."""
        error = (
            f"stream {stream.stream_id} is {status} at the transmitter"
            f"{f' ({reason})' if reason else ''} and it refused to enable it: {describe(exc)}"
        )
        if self.state.health is not Health.DEGRADED or self.state.last_error != error:
            metrics.UPSTREAM_ADAPTATIONS.labels("reenable_refused").inc()
            logs.event(
                log,
                logging.WARNING,
                "upstream_reenable_refused",
                upstream_id=self.upstream_id,
                stream_id=stream.stream_id,
                remote_status=status,
                http_status=exc.status,
                error=describe(exc),
            )
        await self._save(
            replace(
                self.state,
                health=Health.DEGRADED,
                remote_status=status,
                remote_status_reason=reason,
                last_error=error,
                last_error_at=self.clock(),
            )
        )

    async def _save(self, state: UpstreamState) -> None:
        if state.health is not self.state.health:
            metrics.UPSTREAM_LINK_CHANGES.labels(state.health.value).inc()
            logs.event(
                log,
                logging.WARNING if state.last_error and state.health is not Health.HEALTHY else logging.INFO,
                "upstream_link_state",
                upstream_id=self.upstream_id,
                state=state.health.value,
                previous=self.state.health.value,
                error=state.last_error if state.health is not Health.HEALTHY else None,
            )
        self.state = state
        try:
            await self.store.save_upstream_state(self.upstream_id, state)
        except HubError as exc:  # the store is down; the state is saved again at the next change
            log.warning("upstream %s: state not saved: %s", self.upstream_id, exc.description)
