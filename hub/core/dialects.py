"""Reading what identity providers actually send, and turning it into SSF 1.0 events.

:func:`read_inbound` takes the claims of an upstream SET whose signature, ``iss``, ``aud``,
``iat`` and shape were already verified, and returns an :class:`InboundSet`: one subject and
one event per distinct event type, in the form the hub emits. The dialects it accepts:

- the subject: top-level ``sub_id`` first, else an in-event ``subject`` (AMB-3); the in-event
  copy is dropped from the event, since SSF 1.0 carries it only in ``sub_id`` (R-SET-11);
- ``subject_type`` as ``format`` (AMB-2), ``phone`` as ``phone_number`` and the other ID1
  format spellings (AMB-4), through :func:`hub.core.subjects.validate_subject`;
- legacy SSE ``verification``/``stream-updated`` URIs (AMB-6) and Google's RISC
  ``verification`` URI, through the catalogue; an SSE ID1 (2021) stream event names no
  subject at all (AMB-7): a SET of stream events only may come without one (``subject`` is
  then ``{}``), any other event still needs a subject;
- RISC ``sessions-revoked`` as CAEP ``session-revoked`` (R-RISC-9);
- ``event_timestamp`` in milliseconds (values above 1e11, AMB-16) as whole seconds, and the
  SET's ``toe`` (RFC 8417) as ``event_timestamp`` when the event has none;
- ``reason_admin``/``reason_user`` as a bare string, re-emitted as ``{"en": ...}`` (AMB-16),
  and optional claims that do not fit their schema (an enum value outside the list, a wrong
  type, ``null``) repaired or dropped, unless the issuer is ``strict``
  (:mod:`hub.core.tolerance`; each repair is listed in :attr:`InboundSet.tolerated`);
- ID1 ``assurance-level-change`` without ``namespace`` but with ``nist-aal*`` levels
  (AMB-16) as namespace ``NIST-AAL``;
- several ``events`` keys (AMB-17): keys naming the same type (an alias, a deprecated name)
  merge into one event, the current name's claims winning; distinct types stay distinct
  events of one SET, processed as one unit; types the hub does not know are skipped, and a SET
  with none it knows is refused (``invalid_request``, the closest code, AMB-13).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.core.events import validate_event
from hub.core.subjects import validate_subject
from hub.core.tolerance import Change, repair
from hub.errors import InvalidEvent
from receivers.events import CATALOGUE, EventCatalogue, EventType, normalize_event_timestamp

__all__ = ["UPSTREAM_CLAIM", "InboundEvent", "InboundSet", "read_inbound", "upstream_claim"]

# The extension claim on a re-issued SET naming the upstream SET it came from (AMB-18).
# A URI, so it cannot collide with a registered or another party's claim (RFC 7519 §4.2);
# receivers that do not know it ignore it (R-SET-15).
UPSTREAM_CLAIM = "urn:ssf-hub:upstream"

_NIST_AAL_PREFIX = "nist-aal"


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One event of an upstream SET: its current type URI, its SSF 1.0 claims, and what
    :func:`hub.core.tolerance.repair` changed to make them fit."""

    event_type: EventType
    claims: dict[str, Any]
    tolerated: tuple[Change, ...] = ()

    @property
    def uri(self) -> str:
        return self.event_type.uri


@dataclass(frozen=True, slots=True)
class InboundSet:
    """An upstream SET read into the hub's terms (see the module docstring)."""

    iss: str
    jti: str
    txn: str | None
    subject: dict[str, Any]  # {} for an SSE ID1 stream event, which names no subject (AMB-7)
    events: tuple[InboundEvent, ...]
    skipped: tuple[str, ...] = ()  # event-type URIs the hub does not know

    @property
    def tolerated(self) -> tuple[Change, ...]:
        """Every repair made to the events' claims (empty when they fitted as sent)."""
        return tuple(change for event in self.events for change in event.tolerated)

    @property
    def correlation_txn(self) -> str:
        """The ``txn`` for the re-issued SETs: the upstream one, else the upstream ``jti``."""
        return self.txn if self.txn is not None else self.jti


def upstream_claim(iss: str, jti: str) -> dict[str, dict[str, str]]:
    """The extension claim a re-issued SET carries, as an ``extra`` mapping."""
    return {UPSTREAM_CLAIM: {"iss": iss, "jti": jti}}


def read_inbound(
    claims: Mapping[str, Any], catalogue: EventCatalogue = CATALOGUE, *, strict: bool = False
) -> InboundSet:
    """Read a verified upstream SET's claims; :class:`InvalidEvent` when they cannot be used.

    Optional claims that do not fit are repaired (:func:`hub.core.tolerance.repair`) unless
    ``strict``; the subject stays strict.
    """
    iss, jti, txn = claims.get("iss"), claims.get("jti"), claims.get("txn")
    if not isinstance(iss, str) or not isinstance(jti, str) or not jti:
        raise InvalidEvent("the SET needs iss and jti strings")
    if txn is not None and (not isinstance(txn, str) or not txn):
        raise InvalidEvent("txn must be a non-empty string")
    raw_events = claims.get("events")
    if not isinstance(raw_events, Mapping) or not raw_events:
        raise InvalidEvent("events must be a non-empty JSON object (R-SET-6)")

    grouped: dict[str, list[tuple[bool, Mapping[str, Any]]]] = {}
    skipped: list[str] = []
    for uri, payload in raw_events.items():
        if not isinstance(payload, Mapping):
            raise InvalidEvent(f"the value of event {str(uri)[:200]} must be a JSON object")
        found = catalogue.get(uri)
        if found is None:
            skipped.append(uri)
            continue
        current = found.superseded_by or found.uri
        exact = uri == current  # its own current name: its claims win a merge
        grouped.setdefault(current, []).append((exact, payload))
    if not grouped:
        raise InvalidEvent(f"no event type the hub knows in this SET: {', '.join(s[:200] for s in skipped)}")

    stream_events_only = all(catalogue.resolve(uri).family == "ssf" for uri in grouped)
    subject = _subject(claims, raw_events, subjectless_ok=stream_events_only)
    toe = claims.get("toe")
    events = []
    for uri, payloads in grouped.items():
        event_type = catalogue.resolve(uri)
        merged: dict[str, Any] = {}
        for _, payload in sorted(payloads, key=lambda p: not p[0]):
            for name, value in payload.items():
                merged.setdefault(name, value)
        event_claims, tolerated = repair(event_type, _event_claims(event_type, merged, toe), strict=strict)
        validate_event(event_type, event_claims, subject or None)
        events.append(InboundEvent(event_type, event_claims, tolerated))
    return InboundSet(iss, jti, txn, subject, tuple(events), tuple(skipped))


def _subject(claims: Mapping[str, Any], events: Mapping[str, Any], *, subjectless_ok: bool) -> dict[str, Any]:
    raw = claims.get("sub_id")
    where = "sub_id"
    if raw is None:  # AMB-3
        for uri, payload in events.items():
            if isinstance(payload, Mapping) and "subject" in payload:
                raw, where = payload["subject"], f"events[{str(uri)[:200]}].subject"
                break
    if raw is None and subjectless_ok:
        return {}  # SSE ID1 verification / stream-updated: about the stream it came on (AMB-7)
    if raw is None:
        raise InvalidEvent("the SET names no subject: no sub_id and no in-event subject (R-SET-11)")
    return validate_subject(raw, path=where)


def _event_claims(event_type: EventType, claims: dict[str, Any], toe: Any) -> dict[str, Any]:
    out = {name: value for name, value in claims.items() if name != "subject"}
    timestamp = out.get("event_timestamp")
    if timestamp is not None and _is_number(timestamp):
        seconds = normalize_event_timestamp(timestamp)
        out["event_timestamp"] = int(seconds) if seconds != timestamp else timestamp
    elif timestamp is None and _is_number(toe) and _has_claim(event_type, "event_timestamp"):
        out["event_timestamp"] = int(normalize_event_timestamp(toe))
    if event_type.name == "assurance-level-change" and "namespace" not in out:
        levels = (out.get("current_level"), out.get("previous_level"))
        if any(isinstance(v, str) and v.lower().startswith(_NIST_AAL_PREFIX) for v in levels):
            out["namespace"] = "NIST-AAL"
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _has_claim(event_type: EventType, name: str) -> bool:
    properties = event_type.schema.get("properties", {})
    return isinstance(properties, Mapping) and name in properties
