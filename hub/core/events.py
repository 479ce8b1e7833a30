"""The event-type catalogue, as the hub uses it.

The catalogue itself (URIs, CAEP 1.0 and RISC 1.0 schemas, legacy names) is
:mod:`receivers.events`, the one copy shared with every receiver; hub modules import it from
there. Here its refusals become the hub's :class:`~hub.errors.InvalidEvent` (400
``invalid_request``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.errors import InvalidEvent
from receivers.events import CATALOGUE, EventCatalogue, EventType, InvalidEventClaims


def resolve_event_type(name_or_uri: str, catalogue: EventCatalogue = CATALOGUE) -> EventType:
    """The type for a short name or URI; :class:`InvalidEvent` when the hub does not know it."""
    try:
        return catalogue.resolve(name_or_uri)
    except InvalidEventClaims as exc:
        raise InvalidEvent(str(exc)) from None


def validate_event(
    event_type: EventType, claims: Mapping[str, Any], subject: Mapping[str, Any] | None = None
) -> None:
    """:meth:`EventType.validate`, refusing with :class:`InvalidEvent`."""
    try:
        event_type.validate(claims, subject)
    except InvalidEventClaims as exc:
        raise InvalidEvent(str(exc)) from None
