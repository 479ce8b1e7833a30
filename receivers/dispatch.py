"""Handing validated events to the code that acts on them.

Handlers are registered per event-type URI (or ``"*"`` for every event) and called with the
:class:`~receivers.events.ReceivedEvent`. A handler's failure is logged and counted; it does
not refuse the SET — the transmitter's error channel is for SETs that fail validation, not for
problems acting on them (R-POLL-5) — but the :class:`~receivers.receiver.Receiver` raises
:class:`HandlerFailed` so the SET is not acknowledged (poll) or answered ``500`` (push) and the
transmitter delivers it again. Handlers must therefore be idempotent by ``jti``: the ones that
succeeded the first time run again. A SET with several alternative event URIs (AMB-17) runs
each distinct handler once, seeing the event under the URI it was registered for.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from receivers.events import ReceivedEvent, canonical_event_type
from receivers.typed import registration

__all__ = ["ANY_EVENT", "Dispatcher", "Handler", "HandlerFailed"]

log = logging.getLogger("receivers.dispatch")
ANY_EVENT = "*"

# Returns nothing, or an awaitable (async handlers); any value it produces is ignored.
Handler = Callable[[ReceivedEvent], object]
H = TypeVar("H", bound=Callable[..., object])


class HandlerFailed(Exception):
    """A handler failed on a SET: it is not acknowledged, so the transmitter delivers it again."""

    def __init__(self, jti: str, failures: int) -> None:
        super().__init__(f"{failures} handler(s) failed on SET {jti}")
        self.jti = jti
        self.failures = failures


class Dispatcher:
    """Event-type URI (or ``"*"``) to handlers; see the module docstring."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def add(self, event_type: str | type[Any], handler: Callable[..., object]) -> None:
        """``event_type``: a URI, ``"*"``, or a typed event class (:mod:`receivers.typed`)."""
        event_type, handler = registration(event_type, handler)
        key = event_type if event_type == ANY_EVENT else canonical_event_type(event_type)
        self._handlers.setdefault(key, []).append(handler)

    def on(self, *event_types: str | type[Any]) -> Callable[[H], H]:
        """Decorator: ``@dispatcher.on(SESSION_REVOKED)``, or ``@dispatcher.on(SessionRevoked)``
        for a handler that gets the typed event."""

        def register(handler: H) -> H:
            for event_type in event_types or (ANY_EVENT,):
                self.add(event_type, handler)
            return handler

        return register

    def handlers_for(self, event_type: str) -> list[Handler]:
        return list(self._handlers.get(canonical_event_type(event_type), []))

    def handles(self, event_type: str) -> bool:
        return bool(self._handlers.get(canonical_event_type(event_type)))

    async def dispatch(self, event: ReceivedEvent) -> int:
        """Run the handlers for ``event``; returns how many failed."""
        calls: list[tuple[Handler, ReceivedEvent]] = []
        seen: set[int] = set()
        for uri in event.events:
            for handler in self._handlers.get(uri, []):
                if id(handler) not in seen:
                    seen.add(id(handler))
                    view = event if uri == event.event_type else _viewed_as(event, uri)
                    calls.append((handler, view))
        for handler in self._handlers.get(ANY_EVENT, []):
            if id(handler) not in seen:
                seen.add(id(handler))
                calls.append((handler, event))
        failures = 0
        for handler, view in calls:
            try:
                result = handler(view)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                failures += 1
                log.exception("handler %r failed on SET %s (%s)", handler, event.jti, event.event_type)
        return failures


def _viewed_as(event: ReceivedEvent, uri: str) -> ReceivedEvent:
    events = {uri: event.events[uri], **{k: v for k, v in event.events.items() if k != uri}}
    return dataclasses.replace(event, events=events)
