"""The SSF event vocabulary: event-type URIs, the CAEP/RISC catalogue, the received-event value.

Part of the library's SSF vocabulary (with :mod:`receivers.subjects`): pure, no I/O, and the
one copy both receivers and the ssf-hub transmitter use.

- URIs of every SSF 1.0 §12, CAEP 1.0 and RISC 1.0 event type, as constants.
- :data:`CATALOGUE` resolves a short name (``session-revoked``), a full event-type URI, a
  legacy SSE URI (AMB-6) or Google's RISC verification URI to an :class:`EventType`, whose
  :meth:`EventType.validate` checks an event object's claims against a draft-07 JSON Schema
  (:mod:`receivers.event_schemas`) and, for the RISC identifier events, the subject's format;
  :meth:`EventType.violation` names the claim at fault. Unknown extra claims are always
  accepted (R-SET-15).
- :func:`canonical_event_type` reads legacy SSE ID1 URIs (``.../sse/event-type/...``) as their
  SSF 1.0 names; :func:`event_time` reads ``event_timestamp`` (milliseconds too, AMB-16).
- :class:`ReceivedEvent` is a SET that passed verification.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import fastjsonschema

from receivers.event_schemas import CAEP_SCHEMAS, CREDENTIAL_TYPES, RISC_SCHEMAS, SSF_SCHEMAS
from receivers.subjects import canonical_format

__all__ = [
    "ACCOUNT_CREDENTIAL_CHANGE_REQUIRED",
    "ACCOUNT_DISABLED",
    "ACCOUNT_ENABLED",
    "ACCOUNT_PURGED",
    "ASSURANCE_LEVEL_CHANGE",
    "CAEP_BASE",
    "CATALOGUE",
    "CREDENTIAL_CHANGE",
    "CREDENTIAL_COMPROMISE",
    "CREDENTIAL_TYPES",
    "DEVICE_COMPLIANCE_CHANGE",
    "IDENTIFIER_RECYCLED",
    "RISC_BASE",
    "RISC_VERIFICATION",
    "RISK_LEVEL_CHANGE",
    "SESSIONS_REVOKED",
    "SESSION_ESTABLISHED",
    "SESSION_PRESENTED",
    "SESSION_REVOKED",
    "SSF_BASE",
    "STREAM_UPDATED",
    "TOKEN_CLAIMS_CHANGE",
    "VERIFICATION",
    "ClaimViolation",
    "EventCatalogue",
    "EventType",
    "InvalidEventClaims",
    "ReceivedEvent",
    "canonical_event_type",
    "event_time",
    "normalize_event_timestamp",
]

SSF_BASE = "https://schemas.openid.net/secevent/ssf/event-type/"
CAEP_BASE = "https://schemas.openid.net/secevent/caep/event-type/"
RISC_BASE = "https://schemas.openid.net/secevent/risc/event-type/"
_LEGACY_SSE_BASE = "https://schemas.openid.net/secevent/sse/event-type/"

VERIFICATION = SSF_BASE + "verification"
STREAM_UPDATED = SSF_BASE + "stream-updated"

SESSION_REVOKED = CAEP_BASE + "session-revoked"
TOKEN_CLAIMS_CHANGE = CAEP_BASE + "token-claims-change"
CREDENTIAL_CHANGE = CAEP_BASE + "credential-change"
ASSURANCE_LEVEL_CHANGE = CAEP_BASE + "assurance-level-change"
DEVICE_COMPLIANCE_CHANGE = CAEP_BASE + "device-compliance-change"
SESSION_ESTABLISHED = CAEP_BASE + "session-established"
SESSION_PRESENTED = CAEP_BASE + "session-presented"
RISK_LEVEL_CHANGE = CAEP_BASE + "risk-level-change"

ACCOUNT_CREDENTIAL_CHANGE_REQUIRED = RISC_BASE + "account-credential-change-required"
ACCOUNT_PURGED = RISC_BASE + "account-purged"
ACCOUNT_DISABLED = RISC_BASE + "account-disabled"
ACCOUNT_ENABLED = RISC_BASE + "account-enabled"
IDENTIFIER_RECYCLED = RISC_BASE + "identifier-recycled"
CREDENTIAL_COMPROMISE = RISC_BASE + "credential-compromise"
SESSIONS_REVOKED = RISC_BASE + "sessions-revoked"  # deprecated (R-RISC-9), still accepted

# Google's RISC transmitter (the pre-SSE RISC profile) names its verification event this way.
RISC_VERIFICATION = RISC_BASE + "verification"
_LEGACY_ALIASES = {RISC_VERIFICATION: VERIFICATION}

_MILLISECONDS_ABOVE = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973 (AMB-16)


class InvalidEventClaims(ValueError):
    """An event-type name is unknown, or an event's claims do not fit its type."""


def normalize_event_timestamp(value: float) -> float:
    """Seconds since the epoch; values above 1e11 are taken as milliseconds (AMB-16, SSE ID1)."""
    return value / 1000 if value > _MILLISECONDS_ABOVE else value


def canonical_event_type(uri: str) -> str:
    """The SSF 1.0 URI for a legacy SSE ID1 URI (AMB-6) or the RISC verification URI; any
    other URI unchanged."""
    if uri.startswith(_LEGACY_SSE_BASE):
        return SSF_BASE + uri[len(_LEGACY_SSE_BASE) :]
    return _LEGACY_ALIASES.get(uri, uri)


def event_time(payload: Mapping[str, Any]) -> float | None:
    """``event_timestamp`` in seconds (milliseconds above 1e11 converted, AMB-16), or None."""
    value = payload.get("event_timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(normalize_event_timestamp(value))


@dataclass(frozen=True)
class ReceivedEvent:
    """A SET that passed verification: who sent it, about whom, and what happened.

    ``events`` holds every event of the SET with canonical URIs (normally one, R-SET-7; several
    only as alternative names of one event, AMB-17). ``event_type`` and ``payload`` are the
    first of them. ``subject`` is the top-level ``sub_id`` or, for legacy peers, the in-event
    ``subject`` (AMB-3). ``token`` is the compact SET as received.
    """

    iss: str
    jti: str
    iat: float
    aud: tuple[str, ...]
    subject: dict[str, Any]
    events: dict[str, dict[str, Any]]
    txn: str | None = None
    token: str = field(default="", repr=False)
    claims: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def event_type(self) -> str:
        return next(iter(self.events))

    @property
    def payload(self) -> dict[str, Any]:
        return self.events[self.event_type]

    @property
    def occurred_at(self) -> float:
        """When the event happened: ``event_timestamp`` if present, else the SET's ``iat``."""
        found = event_time(self.payload)
        return self.iat if found is None else found


@dataclass(frozen=True)
class ClaimViolation:
    """Why an event object does not fit its type: the top-level claim at fault (None when the
    object as a whole fails, e.g. a required claim is missing) and the message."""

    member: str | None
    message: str


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

    @property
    def required_claims(self) -> frozenset[str]:
        """The claims this type requires (its schema's ``required``); every other one is optional."""
        return frozenset(self.schema.get("required", ()))

    def violation(self, claims: Mapping[str, Any]) -> ClaimViolation | None:
        """The first way ``claims`` do not fit this type's schema, or None when they fit."""
        data = dict(claims) if isinstance(claims, Mapping) else claims
        try:
            self._validator(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            path = list(exc.path or ())
            member = path[1] if len(path) > 1 and isinstance(path[1], str) else None
            return ClaimViolation(member, f"{self.name}: {_describe(exc)}")
        timestamp = data.get("event_timestamp")
        # JSON Schema lets NaN/Infinity through (every comparison with NaN is false).
        has_timestamp = "event_timestamp" in self.schema["properties"]
        if has_timestamp and isinstance(timestamp, float) and not math.isfinite(timestamp):
            return ClaimViolation(
                "event_timestamp", f"{self.name}: data.event_timestamp must be a finite number"
            )
        return None

    def validate(self, claims: Mapping[str, Any], subject: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`InvalidEventClaims` unless ``claims`` (and ``subject``, if given) fit this type."""
        found = self.violation(claims)
        if found is not None:
            raise InvalidEventClaims(found.message)
        if subject is not None and self.subject_formats is not None:
            fmt = canonical_format(subject)
            if fmt not in self.subject_formats:
                allowed = " or ".join(sorted(self.subject_formats))
                raise InvalidEventClaims(f"{self.name}: the subject must be {allowed}, not {fmt!r}")


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

    def find(self, name_or_uri: str) -> EventType | None:
        """The type for a short name, a URI or a legacy alias; None when unknown."""
        return self.get(name_or_uri) or self._by_name.get(name_or_uri)

    def resolve(self, name_or_uri: str) -> EventType:
        """The type for a short name or URI; raises :class:`InvalidEventClaims` when unknown."""
        if not isinstance(name_or_uri, str):
            raise InvalidEventClaims("event type must be a string")
        found = self.find(name_or_uri)
        if found is None:
            raise InvalidEventClaims(f"unknown event type {name_or_uri!r}")
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
        "sessions-revoked": {"deprecated": True, "superseded_by": SESSION_REVOKED},  # R-RISC-9
    }
    return [
        EventType(uri=RISC_BASE + name, name=name, family="risc", schema=s, **special.get(name, {}))
        for name, s in RISC_SCHEMAS.items()
    ]


CATALOGUE = EventCatalogue(
    [*_family(SSF_BASE, "ssf", SSF_SCHEMAS), *_family(CAEP_BASE, "caep", CAEP_SCHEMAS), *_risc_types()],
    aliases={
        **{_LEGACY_SSE_BASE + name: SSF_BASE + name for name in SSF_SCHEMAS},
        **_LEGACY_ALIASES,
    },  # AMB-6
)
