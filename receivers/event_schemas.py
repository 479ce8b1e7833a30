"""JSON Schemas (draft-07) for the claims inside each SSF, CAEP and RISC event object.

Each schema describes ``events[<uri>]`` of a SET. Only the claims an event type defines are
constrained; every schema leaves ``additionalProperties`` open because receivers MUST ignore
claims they do not understand (R-SET-15). Pure data: :mod:`receivers.events` compiles these.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

Schema = dict[str, Any]

DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# R-CAEP-6: the listed values; a peer may also use any value agreed out of band, so the schema
# only asks for a non-empty string and this list serves documentation, metadata and UIs.
CREDENTIAL_TYPES: tuple[str, ...] = (
    "password",
    "pin",
    "x509",
    "fido2-platform",
    "fido2-roaming",
    "fido-u2f",
    "verifiable-credential",
    "phone-voice",
    "phone-sms",
    "app",
)
CHANGE_TYPES: tuple[str, ...] = ("create", "revoke", "update", "delete")  # R-CAEP-6, closed list
# R-CAEP-7: the registered namespaces; custom aliases are allowed, so not enforced.
ASSURANCE_NAMESPACES: tuple[str, ...] = (
    "RFC8176",
    "RFC6711",
    "ISO-IEC-29115",
    "NIST-IAL",
    "NIST-AAL",
    "NIST-FAL",
)
CHANGE_DIRECTIONS: tuple[str, ...] = ("increase", "decrease")
COMPLIANCE_STATUSES: tuple[str, ...] = ("compliant", "not-compliant")  # R-CAEP-8
# R-CAEP-11: the named principal kinds; "or another principal kind", so not enforced.
RISK_PRINCIPALS: tuple[str, ...] = ("USER", "DEVICE", "SESSION", "TENANT", "ORG_UNIT", "GROUP")
RISK_LEVELS: tuple[str, ...] = ("LOW", "MEDIUM", "HIGH")  # R-CAEP-11, closed list
INITIATING_ENTITIES: tuple[str, ...] = ("admin", "user", "policy", "system")  # R-CAEP-2
STREAM_STATUSES: tuple[str, ...] = ("enabled", "paused", "disabled")  # R-SSFEV-2
ACCOUNT_DISABLED_REASONS: tuple[str, ...] = ("hijacking", "bulk-account")  # R-RISC-3

_STRING: Schema = {"type": "string"}
_NON_EMPTY: Schema = {"type": "string", "minLength": 1}

# R-CAEP-3: a language map with at least one string entry. AMB-16: the interop profile talks of
# a "non-empty string", and some transmitters send exactly that, so a bare non-empty string is
# accepted too (draft-07 applies minProperties only to objects and minLength only to strings).
_REASON: Schema = {
    "type": ["object", "string"],
    "minProperties": 1,
    "additionalProperties": _STRING,
    "minLength": 1,
}

# R-CAEP-1..3: optional claims every CAEP event (and RISC credential-compromise) may carry.
# event_timestamp may be in milliseconds from older peers (AMB-16); see normalize_event_timestamp.
COMMON_CLAIMS: Schema = {
    "event_timestamp": {"type": "number", "minimum": 0},
    "initiating_entity": {"enum": list(INITIATING_ENTITIES)},
    "reason_admin": _REASON,
    "reason_user": _REASON,
}


def _enum(values: Iterable[str]) -> Schema:
    return {"type": "string", "enum": list(values)}


def event_schema(
    properties: Mapping[str, Schema] | None = None,
    required: Iterable[str] = (),
    *,
    common: bool = False,
) -> Schema:
    """A draft-07 object schema; ``common`` adds the CAEP optional claims (R-CAEP-1..3)."""
    props: Schema = dict(COMMON_CLAIMS) if common else {}
    props.update(properties or {})
    schema: Schema = {"$schema": DRAFT_07, "type": "object", "properties": props}
    required = list(required)
    if required:
        schema["required"] = required
    # Deep copy so no two event types share (and could mutate) one nested dict.
    return copy.deepcopy(schema)


# Keyed by short name; the URI is the family base plus the short name.
SSF_SCHEMAS: dict[str, Schema] = {
    "verification": event_schema({"state": _STRING}),  # R-SSFEV-1
    "stream-updated": event_schema(  # R-SSFEV-2
        {"status": _enum(STREAM_STATUSES), "reason": _STRING}, required=["status"]
    ),
}

CAEP_SCHEMAS: dict[str, Schema] = {
    "session-revoked": event_schema(common=True),  # R-CAEP-4
    "token-claims-change": event_schema(  # R-CAEP-5: "one or more claims with their new value(s)"
        {"claims": {"type": "object", "minProperties": 1}}, required=["claims"], common=True
    ),
    "credential-change": event_schema(  # R-CAEP-6
        {
            "credential_type": _NON_EMPTY,
            "change_type": _enum(CHANGE_TYPES),
            "friendly_name": _STRING,
            "x509_issuer": _STRING,
            "x509_serial": _STRING,
            "fido2_aaguid": _STRING,
        },
        required=["credential_type", "change_type"],
        common=True,
    ),
    "assurance-level-change": event_schema(  # R-CAEP-7
        {
            "namespace": _NON_EMPTY,
            "current_level": _NON_EMPTY,
            "previous_level": _NON_EMPTY,
            "change_direction": _enum(CHANGE_DIRECTIONS),
        },
        required=["namespace", "current_level"],
        common=True,
    ),
    "device-compliance-change": event_schema(  # R-CAEP-8
        {"previous_status": _enum(COMPLIANCE_STATUSES), "current_status": _enum(COMPLIANCE_STATUSES)},
        required=["previous_status", "current_status"],
        common=True,
    ),
    "session-established": event_schema(  # R-CAEP-9
        {
            "fp_ua": _STRING,
            "acr": _STRING,
            "amr": {"type": "array", "items": _STRING},
            "ext_id": _STRING,
        },
        common=True,
    ),
    "session-presented": event_schema({"fp_ua": _STRING, "ext_id": _STRING}, common=True),  # R-CAEP-10
    "risk-level-change": event_schema(  # R-CAEP-11
        {
            "principal": _NON_EMPTY,
            "current_level": _enum(RISK_LEVELS),
            "previous_level": _enum(RISK_LEVELS),
            "risk_reason": _STRING,
        },
        required=["principal", "current_level"],
        common=True,
    ),
}

RISC_SCHEMAS: dict[str, Schema] = {
    "account-credential-change-required": event_schema(),  # R-RISC-1
    "account-purged": event_schema(),  # R-RISC-2
    "account-disabled": event_schema({"reason": _enum(ACCOUNT_DISABLED_REASONS)}),  # R-RISC-3
    "account-enabled": event_schema(),  # R-RISC-3
    "identifier-changed": event_schema({"new-value": _STRING}),  # R-RISC-4
    "identifier-recycled": event_schema(),  # R-RISC-5
    "credential-compromise": event_schema(  # R-RISC-6: RISC defines no initiating_entity here
        {
            "credential_type": _NON_EMPTY,
            "event_timestamp": COMMON_CLAIMS["event_timestamp"],
            "reason_admin": _REASON,
            "reason_user": _REASON,
        },
        required=["credential_type"],
    ),
    # R-RISC-7
    "opt-in": event_schema(),
    "opt-out-initiated": event_schema(),
    "opt-out-cancelled": event_schema(),
    "opt-out-effective": event_schema(),
    # R-RISC-8
    "recovery-activated": event_schema(),
    "recovery-information-changed": event_schema(),
    # R-RISC-9: deprecated, accepted inbound only (mapped to CAEP session-revoked).
    "sessions-revoked": event_schema(),
}
