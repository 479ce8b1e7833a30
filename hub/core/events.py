"""The event-type catalogue: every SSF, CAEP and RISC event type the hub knows, with claim checks.

:data:`CATALOGUE` resolves a short name (``session-revoked``), a full event-type URI, or a legacy
SSE URI (AMB-6) to an :class:`EventType`, whose :meth:`EventType.validate` checks an event
object's claims against a draft-07 JSON Schema (see :mod:`hub.core.event_schemas`) and, for the
RISC identifier events, the subject's format. Unknown extra claims are always accepted (R-SET-15).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import fastjsonschema

from hub.core.event_schemas import CAEP_SCHEMAS, CREDENTIAL_TYPES, RISC_SCHEMAS, SSF_SCHEMAS
from hub.core.subjects import canonical_format
from hub.errors import InvalidEvent

__all__ = [
    "CAEP_BASE",
    "CATALOGUE",
    "CREDENTIAL_TYPES",
    "LEGACY_SSE_BASE",
    "RISC_BASE",
    "SESSIONS_REVOKED_URI",
    "SESSION_REVOKED_URI",
    "SSF_BASE",
    "STREAM_UPDATED_URI",
    "VERIFICATION_URI",
    "EventCatalogue",
    "EventType",
    "normalize_event_timestamp",
]

SSF_BASE = "https://schemas.openid.net/secevent/ssf/event-type/"
CAEP_BASE = "https://schemas.openid.net/secevent/caep/event-type/"
RISC_BASE = "https://schemas.openid.net/secevent/risc/event-type/"
LEGACY_SSE_BASE = "https://schemas.openid.net/secevent/sse/event-type/"  # SSE ID1 (AMB-6)

VERIFICATION_URI = SSF_BASE + "verification"
STREAM_UPDATED_URI = SSF_BASE + "stream-updated"
SESSION_REVOKED_URI = CAEP_BASE + "session-revoked"
SESSIONS_REVOKED_URI = RISC_BASE + "sessions-revoked"

_MILLISECONDS_ABOVE = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973 (AMB-16)


def normalize_event_timestamp(value: float) -> float:
    """Seconds since the epoch; values above 1e11 are taken as milliseconds (AMB-16, SSE ID1)."""
    return value / 1000 if value > _MILLISECONDS_ABOVE else value


@dataclass(frozen=True)
class EventType:
    """One event type: its URI, short name, family and the schema of its claims."""

    uri: str
    name: str
    family: str  # "ssf" | "caep" | "risc"
    schema: dict[str, Any] = field(compare=False, repr=False)
    deprecated: bool = False
    # Simple-subject formats the event allows (None: any). RISC identifier events need the
    # email or phone identifier itself (R-RISC-4, R-RISC-5).
    subject_formats: frozenset[str] | None = None
    # For a deprecated type, the URI receivers should get instead (R-RISC-9).
    superseded_by: str | None = None

    @cached_property
    def _validator(self) -> Callable[[Any], Any]:
        # Compiled on first use rather than at import: ~2 ms per schema adds up at start-up.
        validator: Callable[[Any], Any] = fastjsonschema.compile(self.schema)
        return validator

    def validate(self, claims: Mapping[str, Any], subject: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`InvalidEvent` unless ``claims`` (and ``subject``, if given) fit this type."""
        data = dict(claims) if isinstance(claims, Mapping) else claims
        try:
            self._validator(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise InvalidEvent(f"{self.name}: {_describe(exc)}") from exc
        timestamp = data.get("event_timestamp")
        # JSON Schema lets NaN/Infinity through (every comparison with NaN is false).
        has_timestamp = "event_timestamp" in self.schema["properties"]
        if has_timestamp and isinstance(timestamp, float) and not math.isfinite(timestamp):
            raise InvalidEvent(f"{self.name}: data.event_timestamp must be a finite number")
        if subject is not None and self.subject_formats is not None:
            fmt = canonical_format(subject)
            if fmt not in self.subject_formats:
                allowed = " or ".join(sorted(self.subject_formats))
                raise InvalidEvent(f"{self.name}: the subject must be {allowed}, not {fmt!r}")


def _describe(exc: Any) -> str:
    if exc.rule == "required" and isinstance(exc.value, Mapping):
        missing = [name for name in exc.rule_definition if name not in exc.value]
        where = "" if exc.name == "data" else f" in {exc.name}"
        return f"missing required claim(s) {', '.join(missing)}{where}"
    return str(exc.message)


class EventCatalogue:
    """Event types by URI and short name, plus legacy URI aliases."""

    def __init__(self, types: Iterable[EventType], *, aliases: Mapping[str, str] | None = None) -> None:
        self._by_uri: dict[str, EventType] = {}
        self._by_name: dict[str, EventType] = {}
        for event_type in types:
            if event_type.uri in self._by_uri or event_type.name in self._by_name:
                raise ValueError(f"duplicate event type {event_type.name} ({event_type.uri})")
            self._by_uri[event_type.uri] = event_type
            self._by_name[event_type.name] = event_type
        self._aliases = dict(aliases or {})
        for alias, target in self._aliases.items():
            if target not in self._by_uri:
                raise ValueError(f"alias {alias} points at unknown event type {target}")

    def get(self, uri: str) -> EventType | None:
        """The type for an event-type URI (current or legacy alias), or None."""
        found = self._by_uri.get(uri)
        if found is None and uri in self._aliases:
            found = self._by_uri[self._aliases[uri]]
        return found

    def resolve(self, name_or_uri: str) -> EventType:
        """The type for a short name or URI; raises :class:`InvalidEvent` when unknown."""
        if not isinstance(name_or_uri, str):
            raise InvalidEvent("event type must be a string")
        found = self.get(name_or_uri) or self._by_name.get(name_or_uri)
        if found is None:
            raise InvalidEvent(f"unknown event type {name_or_uri!r}")
        return found

    def __contains__(self, name_or_uri: object) -> bool:
        if not isinstance(name_or_uri, str):
            return False
        return self.get(name_or_uri) is not None or name_or_uri in self._by_name

    def __iter__(self) -> Iterator[EventType]:
        return iter(self._by_uri.values())

    def __len__(self) -> int:
        return len(self._by_uri)

    def uris(self) -> tuple[str, ...]:
        """Every current event-type URI (legacy aliases excluded)."""
        return tuple(self._by_uri)

    def deliverable_uris(self) -> tuple[str, ...]:
        """What a stream can request: CAEP and RISC types that are not deprecated.

        SSF verification and stream-updated are left out: they need no ``events_requested``
        entry (R-SSFEV-3).
        """
        return tuple(t.uri for t in self if t.family != "ssf" and not t.deprecated)


_IDENTIFIER_SUBJECTS = frozenset({"email", "phone_number"})


def _family(base: str, family: str, schemas: Mapping[str, dict[str, Any]]) -> list[EventType]:
    return [EventType(uri=base + name, name=name, family=family, schema=s) for name, s in schemas.items()]


def _risc_types() -> list[EventType]:
    special: dict[str, dict[str, Any]] = {
        "identifier-changed": {"subject_formats": _IDENTIFIER_SUBJECTS},  # R-RISC-4
        "identifier-recycled": {"subject_formats": _IDENTIFIER_SUBJECTS},  # R-RISC-5
        "sessions-revoked": {"deprecated": True, "superseded_by": SESSION_REVOKED_URI},  # R-RISC-9
    }
    return [
        EventType(uri=RISC_BASE + name, name=name, family="risc", schema=s, **special.get(name, {}))
        for name, s in RISC_SCHEMAS.items()
    ]


CATALOGUE = EventCatalogue(
    [*_family(SSF_BASE, "ssf", SSF_SCHEMAS), *_family(CAEP_BASE, "caep", CAEP_SCHEMAS), *_risc_types()],
    aliases={LEGACY_SSE_BASE + name: SSF_BASE + name for name in SSF_SCHEMAS},  # AMB-6
)
