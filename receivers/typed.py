"""Typed events: one frozen dataclass per CAEP 1.0 and RISC 1.0 event type.

``@dispatcher.on(SessionRevoked)`` registers a handler that gets a :class:`SessionRevoked`
(``subject``, ``event_timestamp``, ``reason``...) instead of a
:class:`~receivers.events.ReceivedEvent` with a ``payload`` dict; the untyped form
(``dispatcher.on(SESSION_REVOKED)``) works as before. Each class takes its URI from the
catalogue (:data:`~receivers.events.CATALOGUE`, by short name), so URIs are defined once, and a
test checks every CAEP/RISC type has a class with a field for each claim its schema defines.

A typed handler only runs for events whose claims fit the type (the catalogue's JSON Schema);
an event that does not fit is logged and the handler skipped (untyped handlers still see it).
Claims named with a hyphen (``new-value``) become underscores; unknown claims stay in
``received.payload`` (R-SET-15).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from receivers.events import CATALOGUE, InvalidEventClaims, ReceivedEvent

__all__ = [
    "TYPED_EVENTS",
    "AccountCredentialChangeRequired",
    "AccountDisabled",
    "AccountEnabled",
    "AccountPurged",
    "AssuranceLevelChange",
    "CaepEvent",
    "CredentialChange",
    "CredentialCompromise",
    "DeviceComplianceChange",
    "IdentifierChanged",
    "IdentifierRecycled",
    "OptIn",
    "OptOutCancelled",
    "OptOutEffective",
    "OptOutInitiated",
    "RecoveryActivated",
    "RecoveryInformationChanged",
    "RiscEvent",
    "RiskLevelChange",
    "SecurityEvent",
    "SessionEstablished",
    "SessionPresented",
    "SessionRevoked",
    "SessionsRevoked",
    "TokenClaimsChange",
    "registration",
]

log = logging.getLogger("receivers.typed")

Reason = dict[str, str] | str  # a language map (R-CAEP-3) or, from some peers, a bare string
E = TypeVar("E", bound="SecurityEvent")
TYPED_EVENTS: dict[str, type[SecurityEvent]] = {}  # event-type URI -> class


@dataclass(frozen=True, kw_only=True)
class SecurityEvent:
    """What every typed event carries. ``event_timestamp``: when it happened, in seconds
    (the claim, milliseconds converted, else the SET's ``iat``)."""

    uri: ClassVar[str]
    name: ClassVar[str]
    subject: dict[str, Any]
    event_timestamp: float
    iss: str
    jti: str
    txn: str | None = None
    received: ReceivedEvent = field(repr=False, compare=False)

    @classmethod
    def from_received(cls: type[E], event: ReceivedEvent) -> E:
        """The typed view of ``event``; raises :class:`InvalidEventClaims` if it does not fit."""
        payload = event.events.get(cls.uri, event.payload)
        CATALOGUE.resolve(cls.uri).validate(payload)
        claims: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if item.name in _BASE_FIELDS:
                continue
            for key in (item.name, item.name.replace("_", "-")):
                if key in payload:
                    value = payload[key]
                    claims[item.name] = tuple(value) if isinstance(value, list) else value
                    break
        return cls(
            subject=event.subject,
            event_timestamp=event.occurred_at,
            iss=event.iss,
            jti=event.jti,
            txn=event.txn,
            received=event,
            **claims,
        )


_BASE_FIELDS = frozenset(f.name for f in dataclasses.fields(SecurityEvent)) | {"event_timestamp"}


def _reason_text(reason: Reason | None) -> str | None:
    if isinstance(reason, dict):
        text = reason.get("en") or next(iter(reason.values()), None)
        return text if isinstance(text, str) else None
    return reason


@dataclass(frozen=True, kw_only=True)
class CaepEvent(SecurityEvent):
    """The optional claims every CAEP event may carry (R-CAEP-1..3)."""

    initiating_entity: str | None = None
    reason_admin: Reason | None = None
    reason_user: Reason | None = None

    @property
    def reason(self) -> str | None:
        """``reason_admin`` as text (English if there is a choice), else ``reason_user``."""
        return _reason_text(self.reason_admin) or _reason_text(self.reason_user)


@dataclass(frozen=True, kw_only=True)
class RiscEvent(SecurityEvent):
    """A RISC 1.0 event (R-RISC-*)."""


def _typed(name: str) -> Callable[[type[E]], type[E]]:
    """Bind the class to the catalogue's event type ``name`` (its URI comes from there)."""

    def bind(cls: type[E]) -> type[E]:
        event_type = CATALOGUE.resolve(name)
        cls.uri, cls.name = event_type.uri, event_type.name
        TYPED_EVENTS[cls.uri] = cls
        return cls

    return bind


# -- CAEP 1.0 -------------------------------------------------------------------------------------
@_typed("session-revoked")
@dataclass(frozen=True, kw_only=True)
class SessionRevoked(CaepEvent):
    """R-CAEP-4."""


@_typed("token-claims-change")
@dataclass(frozen=True, kw_only=True)
class TokenClaimsChange(CaepEvent):
    """R-CAEP-5: the claims that changed, with their new values."""

    claims: dict[str, Any]


@_typed("credential-change")
@dataclass(frozen=True, kw_only=True)
class CredentialChange(CaepEvent):
    """R-CAEP-6."""

    credential_type: str
    change_type: str
    friendly_name: str | None = None
    x509_issuer: str | None = None
    x509_serial: str | None = None
    fido2_aaguid: str | None = None


@_typed("assurance-level-change")
@dataclass(frozen=True, kw_only=True)
class AssuranceLevelChange(CaepEvent):
    """R-CAEP-7."""

    namespace: str
    current_level: str
    previous_level: str | None = None
    change_direction: str | None = None


@_typed("device-compliance-change")
@dataclass(frozen=True, kw_only=True)
class DeviceComplianceChange(CaepEvent):
    """R-CAEP-8."""

    previous_status: str
    current_status: str


@_typed("session-established")
@dataclass(frozen=True, kw_only=True)
class SessionEstablished(CaepEvent):
    """R-CAEP-9."""

    fp_ua: str | None = None
    acr: str | None = None
    amr: tuple[str, ...] | None = None
    ext_id: str | None = None


@_typed("session-presented")
@dataclass(frozen=True, kw_only=True)
class SessionPresented(CaepEvent):
    """R-CAEP-10."""

    fp_ua: str | None = None
    ext_id: str | None = None


@_typed("risk-level-change")
@dataclass(frozen=True, kw_only=True)
class RiskLevelChange(CaepEvent):
    """R-CAEP-11."""

    principal: str
    current_level: str
    previous_level: str | None = None
    risk_reason: str | None = None


# -- RISC 1.0 -------------------------------------------------------------------------------------
@_typed("account-credential-change-required")
@dataclass(frozen=True, kw_only=True)
class AccountCredentialChangeRequired(RiscEvent):
    """R-RISC-1."""


@_typed("account-purged")
@dataclass(frozen=True, kw_only=True)
class AccountPurged(RiscEvent):
    """R-RISC-2."""


@_typed("account-disabled")
@dataclass(frozen=True, kw_only=True)
class AccountDisabled(RiscEvent):
    """R-RISC-3: ``reason`` is ``hijacking`` or ``bulk-account`` when given."""

    reason: str | None = None


@_typed("account-enabled")
@dataclass(frozen=True, kw_only=True)
class AccountEnabled(RiscEvent):
    """R-RISC-3."""


@_typed("identifier-changed")
@dataclass(frozen=True, kw_only=True)
class IdentifierChanged(RiscEvent):
    """R-RISC-4: the subject is the old identifier, ``new_value`` the new one."""

    new_value: str | None = None


@_typed("identifier-recycled")
@dataclass(frozen=True, kw_only=True)
class IdentifierRecycled(RiscEvent):
    """R-RISC-5."""


@_typed("credential-compromise")
@dataclass(frozen=True, kw_only=True)
class CredentialCompromise(RiscEvent):
    """R-RISC-6."""

    credential_type: str
    reason_admin: Reason | None = None
    reason_user: Reason | None = None

    @property
    def reason(self) -> str | None:
        return _reason_text(self.reason_admin) or _reason_text(self.reason_user)


@_typed("opt-in")
@dataclass(frozen=True, kw_only=True)
class OptIn(RiscEvent):
    """R-RISC-7."""


@_typed("opt-out-initiated")
@dataclass(frozen=True, kw_only=True)
class OptOutInitiated(RiscEvent):
    """R-RISC-7."""


@_typed("opt-out-cancelled")
@dataclass(frozen=True, kw_only=True)
class OptOutCancelled(RiscEvent):
    """R-RISC-7."""


@_typed("opt-out-effective")
@dataclass(frozen=True, kw_only=True)
class OptOutEffective(RiscEvent):
    """R-RISC-7."""


@_typed("recovery-activated")
@dataclass(frozen=True, kw_only=True)
class RecoveryActivated(RiscEvent):
    """R-RISC-8."""


@_typed("recovery-information-changed")
@dataclass(frozen=True, kw_only=True)
class RecoveryInformationChanged(RiscEvent):
    """R-RISC-8."""


@_typed("sessions-revoked")
@dataclass(frozen=True, kw_only=True)
class SessionsRevoked(RiscEvent):
    """R-RISC-9: deprecated in favour of CAEP session-revoked; still received."""


def registration(
    event_type: str | type[Any], handler: Callable[..., object]
) -> tuple[str, Callable[..., object]]:
    """For :meth:`Dispatcher.add`: a URI and handler unchanged, or a typed event class's URI
    and a handler that gets the typed view (and is skipped when the event does not fit)."""
    if isinstance(event_type, str):
        return event_type, handler
    cls = next((c for c in TYPED_EVENTS.values() if c is event_type), None)
    if cls is None:
        raise TypeError(f"not an event type: {event_type!r}")

    def typed_handler(event: ReceivedEvent) -> object:
        try:
            view = cls.from_received(event)
        except InvalidEventClaims as exc:
            log.warning(
                "SET %s does not fit %s (%s); typed handler %r skipped", event.jti, cls.__name__, exc, handler
            )
            return None
        return handler(view)

    return cls.uri, typed_handler
