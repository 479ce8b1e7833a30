"""Tolerant reading of an upstream event's claims: repair what is optional, refuse the rest.

Identity providers in the field send CAEP/RISC events whose *optional* claims do not fit the
schema: an ``initiating_entity`` outside CAEP's list ("Duo policy"), a number where a string
belongs, ``"state": null``. Refusing such a SET loses the revocation it carries (most
transmitters do not retry a 400). :func:`repair` keeps the event and fixes the claims instead,
with the event type's JSON Schema (:mod:`receivers.event_schemas`) as the one source of what
is optional and what is required:

- ``null`` for an optional claim the type defines is read as absent (action ``absent``);
- a bare-string ``reason_admin``/``reason_user`` becomes the language map ``{"en": ...}``
  CAEP defines (R-CAEP-3, AMB-16; action ``mapped``); an enum value that differs from a listed
  one only in case becomes the listed one, and an ``event_timestamp`` written as an ISO 8601
  time with its zone becomes seconds since the epoch (``mapped``);
- any other optional claim that does not fit is dropped (action ``dropped``);
- a required claim that is missing or does not fit, and the event as a whole, still refuse
  (:class:`~hub.errors.InvalidEvent`, the validator's own message);
- claims the type does not define are passed through unchanged (R-SET-15).

``strict=True`` (an issuer registered ``strict``) keeps the checks as they were before
tolerance: anything that does not fit refuses; only the bare-string reason mapping, which the
schema itself accepts (AMB-16), still happens. Every repair is a :class:`Change`, which
ingest records in its audit record, a metric and a log line. Pure: no I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.errors import InvalidEvent
from receivers.events import EventType

__all__ = ["DROPPED", "MAPPED", "NULL_AS_ABSENT", "Change", "repair"]

DROPPED = "dropped"
MAPPED = "mapped"
NULL_AS_ABSENT = "absent"

_REASONS = ("reason_admin", "reason_user")
_REASON_LANGUAGE = "en"  # the language of a bare-string reason is not said; English is the default


@dataclass(frozen=True, slots=True)
class Change:
    """One repair of one event's claim: which event and member, what was done, and why."""

    event: str  # the event type's short name
    member: str
    action: str  # DROPPED | MAPPED | NULL_AS_ABSENT
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"event": self.event, "member": self.member, "action": self.action, "reason": self.reason}


def repair(
    event_type: EventType, claims: Mapping[str, Any], *, strict: bool = False
) -> tuple[dict[str, Any], tuple[Change, ...]]:
    """``claims`` made to fit ``event_type`` and the changes made; :class:`InvalidEvent` when
    they cannot be (a required claim, or anything at all when ``strict``)."""
    out = dict(claims)
    changes: list[Change] = []
    defined = _properties(event_type)
    required = event_type.required_claims
    for name in _REASONS:
        value = out.get(name)
        if name in defined and isinstance(value, str) and value:
            out[name] = {_REASON_LANGUAGE: value}
            changes.append(Change(event_type.name, name, MAPPED, 'a plain string, re-issued as {"en": ...}'))
    if not strict:
        for name in [n for n, v in out.items() if v is None and n in defined and n not in required]:
            del out[name]
            changes.append(Change(event_type.name, name, NULL_AS_ABSENT, "null, read as absent"))
    # Each round removes or fixes one defined claim, so this ends within len(defined) rounds.
    for _ in range(len(defined) + 1):
        found = event_type.violation(out)
        if found is None:
            return out, tuple(changes)
        member = found.member
        if strict or member is None or member in required or member not in out:
            raise InvalidEvent(found.message)
        mapped = _mapped(member, defined.get(member), out[member])
        if mapped is not None:
            out[member] = mapped
            changes.append(Change(event_type.name, member, MAPPED, f"{found.message}; read as {mapped!r}"))
        else:
            del out[member]
            changes.append(Change(event_type.name, member, DROPPED, found.message))
    raise InvalidEvent(f"{event_type.name}: the claims could not be repaired")


def _properties(event_type: EventType) -> dict[str, Any]:
    properties = event_type.schema.get("properties", {})
    return dict(properties) if isinstance(properties, Mapping) else {}


def _mapped(member: str, schema: Any, value: Any) -> str | int | None:
    """What ``value`` certainly means in the form the schema asks for, or None."""
    if member == "event_timestamp":
        return _iso_seconds(value)
    return _enum_case(schema, value)


def _iso_seconds(value: Any) -> int | None:
    """Whole seconds since the epoch for an ISO 8601 time that names its zone, else None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:  # local to whom? not certain
        return None
    seconds = int(when.timestamp())
    return seconds if seconds >= 0 else None


def _enum_case(schema: Any, value: Any) -> str | None:
    """The listed enum value ``value`` names in another case ("Admin" for "admin"), or None."""
    if not isinstance(schema, Mapping) or not isinstance(value, str):
        return None
    listed = [v for v in schema.get("enum", ()) if isinstance(v, str) and v.casefold() == value.casefold()]
    return listed[0] if len(listed) == 1 and listed[0] != value else None
