"""What the hub does with each SET it polls from an upstream (the poll consumer's processor).

Stream-control events (verification, stream-updated) are about the hub's own subscription:
they are verified here against the upstream's metadata and handed to the link. Every other
SET goes to ingest, the one place that verifies against the issuer registry, de-duplicates
and re-issues; its refusals become ``setErrs`` (R-POLL-2) with the same ``err`` code, and a
store that cannot take the SET right now leaves it unacknowledged, so the upstream
delivers it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from hub.errors import HubError, Unavailable
from receivers.errors import (
    AccessDenied,
    AuthenticationFailed,
    InvalidAudience,
    InvalidIssuer,
    InvalidKey,
    InvalidRequest,
    InvalidState,
    KeysUnavailable,
    SetError,
)
from receivers.events import STREAM_UPDATED, VERIFICATION, canonical_event_type
from receivers.receiver import Receiver

_SET_ERRORS: dict[str, type[SetError]] = {
    cls.err: cls
    for cls in (
        InvalidRequest,
        InvalidKey,
        InvalidIssuer,
        InvalidAudience,
        AuthenticationFailed,
        AccessDenied,
        InvalidState,
    )
}
CONTROL_EVENTS = frozenset({VERIFICATION, STREAM_UPDATED})


class IngestSink(Protocol):
    """Ingest's entry point: accept one compact SET (verify, de-duplicate, re-issue) or raise a
    :class:`~hub.errors.HubError` naming the RFC 8935 ``err`` (R-PUSH-6)."""

    async def __call__(self, compact_set: str, /) -> object: ...


ControlHandler = Callable[[str, Mapping[str, Any]], Awaitable[None]]
EventSeen = Callable[[], None]
SetRefused = Callable[[str], None]


def is_control(event_types: object) -> bool:
    """Whether a SET's ``events`` names a stream-control event (legacy SSE URIs too, AMB-6)."""
    return isinstance(event_types, dict) and any(
        isinstance(uri, str) and canonical_event_type(uri) in CONTROL_EVENTS for uri in event_types
    )


class UpstreamFeed:
    """The :class:`~receivers.poll.SetProcessor` of one upstream's poll stream."""

    def __init__(
        self,
        receiver: Receiver,
        sink: IngestSink,
        *,
        on_control: ControlHandler,
        on_event: EventSeen,
        on_refused: SetRefused = lambda error: None,
    ) -> None:
        self.receiver = receiver  # verifies control events against the upstream's metadata
        self.sink = sink
        self.on_control = on_control
        self.on_event = on_event
        self.on_refused = on_refused

    async def process(self, token: str) -> object:
        parsed = self.receiver.verifier.parse(token)  # refuses garbage before any key lookup
        if is_control(parsed.claims.get("events")):
            result = await self.receiver.process(token)
            self.on_event()
            await self.on_control(result.event.event_type, result.event.payload)
            return result
        try:
            outcome = await self.sink(token)
        except Unavailable as exc:
            raise KeysUnavailable(exc.description, retry_after=float(exc.retry_after)) from exc
        except HubError as exc:
            self.on_refused(f"ingest refused a polled SET: {exc.err} {exc.description}")
            raise _SET_ERRORS.get(exc.err, InvalidRequest)(exc.description) from exc
        self.on_event()
        return outcome
