"""Event-type URIs (SSF 1.0 §12, CAEP 1.0, RISC 1.0) and the validated-event value object.

Legacy SSE ID1 URIs (``.../sse/event-type/...``, AMB-6) are read as their SSF 1.0 names by
:func:`canonical_event_type`; everything else is kept as sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACCOUNT_CREDENTIAL_CHANGE_REQUIRED",
    "ACCOUNT_DISABLED",
    "ACCOUNT_ENABLED",
    "ACCOUNT_PURGED",
    "ASSURANCE_LEVEL_CHANGE",
    "CAEP_BASE",
    "CREDENTIAL_CHANGE",
    "CREDENTIAL_COMPROMISE",
    "DEVICE_COMPLIANCE_CHANGE",
    "IDENTIFIER_RECYCLED",
    "RISC_BASE",
    "RISK_LEVEL_CHANGE",
    "SESSIONS_REVOKED",
    "SESSION_ESTABLISHED",
    "SESSION_PRESENTED",
    "SESSION_REVOKED",
    "SSF_BASE",
    "STREAM_UPDATED",
    "TOKEN_CLAIMS_CHANGE",
    "VERIFICATION",
    "ReceivedEvent",
    "canonical_event_type",
    "event_time",
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

_MILLISECONDS_ABOVE = 1e11  # AMB-16: SSE ID1 examples used millisecond timestamps


def canonical_event_type(uri: str) -> str:
    """The SSF 1.0 URI for a legacy SSE ID1 URI (AMB-6); any other URI unchanged."""
    if uri.startswith(_LEGACY_SSE_BASE):
        return SSF_BASE + uri[len(_LEGACY_SSE_BASE) :]
    return uri


def event_time(payload: Mapping[str, Any]) -> float | None:
    """``event_timestamp`` in seconds (milliseconds above 1e11 converted, AMB-16), or None."""
    value = payload.get("event_timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return value / 1000 if value > _MILLISECONDS_ABOVE else float(value)


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
