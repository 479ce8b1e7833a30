"""Stream verification from the receiver's side (SSF 1.0 §8.1.4, R-VERIFY-*).

The receiver asks for a verification event with a fresh random ``state``
(:meth:`VerificationStates.new`) and checks the event that comes back
(:meth:`VerificationStates.check`):

- its ``sub_id`` must be the stream's own subject, ``{"format": "opaque", "id": <stream_id>}``
  (R-VERIFY-4, R-SUB-11); another stream's id is refused with ``invalid_request``;
- a ``state`` we asked for confirms the stream (:meth:`VerificationStates.confirmed`); a state
  we never asked for is refused with ``invalid_state`` (R-VERIFY-6);
- no ``state`` at all is a transmitter-initiated verification, accepted (R-VERIFY-5);
- the event may arrive behind other queued events, or more than once (R-VERIFY-3): a state
  already confirmed is accepted again.

``stream-updated`` events carry the stream's subject too and get the same ``sub_id`` check.
SSE ID1 (2021) stream events name no subject (their ``subject`` is ``{}``): they are about the
stream they arrived on, or, for a receiver serving several, the one that asked for the
``state``.
Pure: the clock and the random source are injected.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from receivers.errors import InvalidRequest, InvalidState
from receivers.events import STREAM_UPDATED, VERIFICATION, ReceivedEvent
from receivers.subjects import canonical_format

__all__ = ["VerificationStates"]


def _random_state() -> str:
    return secrets.token_urlsafe(24)


class VerificationStates:
    """The ``state`` values this receiver asked for, per stream, and which have been echoed."""

    def __init__(
        self,
        *,
        ttl: float = 24 * 3600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
        new_state: Callable[[], str] = _random_state,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._new_state = new_state
        # (stream_id, state) -> (created_at, confirmed)
        self._states: OrderedDict[tuple[str, str], tuple[float, bool]] = OrderedDict()
        # Called with (stream_id, state) when a state is first confirmed: lets the I/O edge
        # (StreamClient.verified) wake a waiter without this module knowing about event loops.
        self.listeners: list[Callable[[str, str], object]] = []

    def new(self, stream_id: str) -> str:
        """A fresh random ``state`` for a verification request on ``stream_id``, now expected."""
        state = self._new_state()
        self.expect(stream_id, state)
        return state

    def expect(self, stream_id: str, state: str) -> None:
        self._expire()
        self._states[(stream_id, state)] = (self.clock(), False)
        while len(self._states) > self.max_entries:
            self._states.popitem(last=False)

    def confirmed(self, stream_id: str, state: str) -> bool:
        """Whether the verification event echoing ``state`` has arrived."""
        self._expire()
        entry = self._states.get((stream_id, state))
        return entry is not None and entry[1]

    def pending(self, stream_id: str) -> list[str]:
        self._expire()
        return [s for (sid, s), (_, done) in self._states.items() if sid == stream_id and not done]

    def check(self, event: ReceivedEvent, *, stream_id: str | None) -> None:
        """Refuse a verification or stream-updated event that does not belong to ``stream_id``."""
        if event.event_type not in (VERIFICATION, STREAM_UPDATED):
            return
        subject = event.subject
        named = subject.get("id") if canonical_format(subject) == "opaque" else None
        if not subject:  # SSE ID1 (AMB-7): no subject; the stream is the one it arrived on
            named = stream_id if stream_id is not None else self._stream_expecting(event.payload.get("state"))
        if not isinstance(named, str):
            raise InvalidRequest(
                "the sub_id of an SSF stream event must be the opaque stream id (R-VERIFY-4)"
            )
        if stream_id is not None and named != stream_id:
            raise InvalidRequest("the event names another stream")
        if event.event_type != VERIFICATION:
            return
        state = event.payload.get("state")
        if state is None:
            return  # transmitter-initiated (R-VERIFY-5)
        self._expire()
        key = (named, str(state))
        entry = self._states.get(key)
        if entry is None:
            raise InvalidState("the verification state does not match any request of this receiver")
        first = not entry[1]
        self._states[key] = (entry[0], True)
        if first:
            for listener in list(self.listeners):
                listener(named, str(state))

    def _stream_expecting(self, state: object) -> str | None:
        """The stream a subject-less verification answers: the one that asked for ``state``."""
        return next((sid for sid, s in self._states if s == state), None)

    def _expire(self) -> None:
        horizon = self.clock() - self.ttl
        while self._states:
            key, (created, _) = next(iter(self._states.items()))
            if created > horizon:
                break
            del self._states[key]
