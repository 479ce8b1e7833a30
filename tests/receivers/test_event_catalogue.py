"""The event-type catalogue (receivers.events): names, URIs and per-event claim rules (spec §10, §11, §12)."""

from __future__ import annotations

from typing import Any

import pytest

from receivers.events import (
    CAEP_BASE,
    CATALOGUE,
    CREDENTIAL_TYPES,
    RISC_BASE,
    SSF_BASE,
    EventCatalogue,
    EventType,
    normalize_event_timestamp,
)
from receivers.events import SESSION_REVOKED as SESSION_REVOKED_URI
from receivers.events import SESSIONS_REVOKED as SESSIONS_REVOKED_URI
from receivers.events import STREAM_UPDATED as STREAM_UPDATED_URI
from receivers.events import VERIFICATION as VERIFICATION_URI
from receivers.events import InvalidEventClaims as InvalidEvent

CAEP_NAMES = [
    "session-revoked",
    "token-claims-change",
    "credential-change",
    "assurance-level-change",
    "device-compliance-change",
    "session-established",
    "session-presented",
    "risk-level-change",
]
RISC_NAMES = [
    "account-credential-change-required",
    "account-purged",
    "account-disabled",
    "account-enabled",
    "identifier-changed",
    "identifier-recycled",
    "credential-compromise",
    "opt-in",
    "opt-out-initiated",
    "opt-out-cancelled",
    "opt-out-effective",
    "recovery-activated",
    "recovery-information-changed",
    "sessions-revoked",
]
SSF_NAMES = ["verification", "stream-updated"]
ALL = (
    [(SSF_BASE, n, "ssf") for n in SSF_NAMES]
    + [(CAEP_BASE, n, "caep") for n in CAEP_NAMES]
    + [(RISC_BASE, n, "risc") for n in RISC_NAMES]
)

# One valid event object per type: the minimal claims each one requires.
MINIMAL: dict[str, dict[str, Any]] = {
    "stream-updated": {"status": "paused"},
    "token-claims-change": {"claims": {"role": "ro-admin"}},
    "credential-change": {"credential_type": "password", "change_type": "update"},
    "assurance-level-change": {"namespace": "NIST-AAL", "current_level": "nist-aal2"},
    "device-compliance-change": {"previous_status": "compliant", "current_status": "not-compliant"},
    "risk-level-change": {"principal": "USER", "current_level": "HIGH"},
    "credential-compromise": {"credential_type": "password"},
}


def check(name: str, claims: Any, subject: dict[str, Any] | None = None) -> None:
    CATALOGUE.resolve(name).validate(claims, subject)


def rejects(name: str, claims: Any, match: str) -> None:
    with pytest.raises(InvalidEvent, match=match) as info:
        check(name, claims)
    assert str(info.value).startswith(f"{name}: ")  # the short name leads every message


# --- the catalogue ------------------------------------------------------------------------------


@pytest.mark.parametrize(("base", "name", "family"), ALL)
def test_every_event_type_resolves_by_short_name_and_by_uri(base: str, name: str, family: str) -> None:
    by_name = CATALOGUE.resolve(name)
    assert by_name is CATALOGUE.resolve(base + name)
    assert by_name is CATALOGUE.get(base + name)
    assert (by_name.uri, by_name.name, by_name.family) == (base + name, name, family)
    assert name in CATALOGUE
    assert base + name in CATALOGUE


def test_catalogue_holds_exactly_the_ssf_caep_and_risc_1_0_types() -> None:
    assert set(CATALOGUE.uris()) == {base + name for base, name, _ in ALL}
    assert len(CATALOGUE) == len(ALL)


def test_legacy_sse_uris_resolve_to_the_ssf_events() -> None:  # AMB-6
    legacy = "https://schemas.openid.net/secevent/sse/event-type/"
    assert CATALOGUE.resolve(legacy + "verification").uri == VERIFICATION_URI
    assert CATALOGUE.get(legacy + "stream-updated") is CATALOGUE.get(STREAM_UPDATED_URI)
    assert legacy + "verification" not in CATALOGUE.uris()


@pytest.mark.parametrize("unknown", ["session-revoke", CAEP_BASE + "nope", "", SSF_BASE])
def test_unknown_event_type_is_refused(unknown: str) -> None:
    with pytest.raises(InvalidEvent, match="unknown event type"):
        CATALOGUE.resolve(unknown)
    assert unknown not in CATALOGUE
    assert CATALOGUE.get(unknown) is None


def test_resolve_refuses_a_non_string() -> None:
    with pytest.raises(InvalidEvent, match="must be a string"):
        CATALOGUE.resolve(["session-revoked"])  # type: ignore[arg-type]
    assert 3 not in CATALOGUE


def test_deliverable_uris_are_caep_and_risc_without_deprecated_ones() -> None:  # R-SSFEV-3, R-RISC-9
    deliverable = set(CATALOGUE.deliverable_uris())
    assert deliverable == {CAEP_BASE + n for n in CAEP_NAMES} | {
        RISC_BASE + n for n in RISC_NAMES if n != "sessions-revoked"
    }
    assert VERIFICATION_URI not in deliverable
    assert STREAM_UPDATED_URI not in deliverable


def test_risc_sessions_revoked_is_deprecated_in_favour_of_caep_session_revoked() -> None:  # R-RISC-9
    old = CATALOGUE.resolve(SESSIONS_REVOKED_URI)
    assert old.deprecated
    assert old.superseded_by == SESSION_REVOKED_URI
    assert not CATALOGUE.resolve(SESSION_REVOKED_URI).deprecated


def test_catalogue_refuses_duplicate_names_and_dangling_aliases() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    one = EventType(uri="urn:a", name="a", family="ssf", schema=schema)
    with pytest.raises(ValueError, match="duplicate"):
        EventCatalogue([one, EventType(uri="urn:b", name="a", family="ssf", schema=schema)])
    with pytest.raises(ValueError, match="unknown event type"):
        EventCatalogue([one], aliases={"urn:old": "urn:missing"})


# --- claims every type accepts ------------------------------------------------------------------


@pytest.mark.parametrize(("base", "name", "family"), ALL)
def test_every_type_accepts_its_minimal_claims_plus_unknown_extras(base: str, name: str, family: str) -> None:
    # R-SET-15: receivers ignore claims they do not understand, so extras never fail validation.
    claims = {**MINIMAL.get(name, {}), "x-vendor": {"anything": [1, 2]}, "subject": {"format": "opaque"}}
    check(name, claims)


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_types_with_required_claims_refuse_an_empty_event_object(name: str) -> None:
    rejects(name, {}, "missing required claim")


@pytest.mark.parametrize("name", ["session-revoked", "account-purged", "verification"])
def test_the_event_object_must_be_a_json_object(name: str) -> None:  # R-SET-6
    rejects(name, ["not", "an", "object"], "data must be object")


# --- SSF events ---------------------------------------------------------------------------------


def test_verification_state_is_optional_and_a_string() -> None:  # R-SSFEV-1
    check("verification", {})
    check("verification", {"state": "VGhpcyBpcyBhbiBleGFtcGxl"})
    rejects("verification", {"state": 42}, r"data\.state must be string")


def test_stream_updated_requires_status() -> None:  # R-SSFEV-2
    rejects("stream-updated", {"reason": "maintenance"}, "missing required claim.*status")


@pytest.mark.parametrize("status", ["enabled", "paused", "disabled"])
def test_stream_updated_status_values(status: str) -> None:  # R-SSFEV-2
    check("stream-updated", {"status": status, "reason": "operator request"})


def test_stream_updated_refuses_an_unknown_status() -> None:  # R-SSFEV-2
    rejects("stream-updated", {"status": "deleted"}, r"data\.status must be one of")


# --- CAEP common claims -------------------------------------------------------------------------


def test_caep_common_optional_claims_are_accepted() -> None:  # R-CAEP-1..3
    check(
        "session-revoked",
        {
            "event_timestamp": 1615304991,
            "initiating_entity": "policy",
            "reason_admin": {"en": "Landspeed Policy Violation: C076E82F"},
            "reason_user": {"en": "Access attempt from multiple regions.", "es-410": "Intento de acceso."},
        },
    )


@pytest.mark.parametrize(
    ("claims", "match"),
    [
        ({"event_timestamp": "1615304991"}, r"event_timestamp must be number"),
        ({"event_timestamp": -1}, r"event_timestamp must be bigger than or equal to 0"),
        ({"event_timestamp": True}, r"event_timestamp must be number"),
        ({"event_timestamp": float("nan")}, r"event_timestamp must be a finite number"),
        ({"event_timestamp": float("inf")}, r"event_timestamp must be a finite number"),
        ({"initiating_entity": "robot"}, r"initiating_entity must be one of"),
        ({"reason_admin": {}}, r"reason_admin must contain at least 1 properties"),
        ({"reason_admin": {"en": 7}}, r"reason_admin\.en must be string"),
        ({"reason_user": ["en", "bye"]}, r"reason_user must be object or string"),
        ({"reason_user": ""}, r"reason_user must be longer than or equal to 1"),
    ],
)
def test_caep_common_claims_are_type_checked(claims: dict[str, Any], match: str) -> None:  # R-CAEP-1..3
    rejects("session-revoked", claims, match)


def test_bare_string_reason_admin_is_accepted_from_interop_peers() -> None:  # AMB-16
    check("session-revoked", {"reason_admin": "Landspeed Policy Violation"})


def test_millisecond_event_timestamps_are_normalized_to_seconds() -> None:  # AMB-16
    assert normalize_event_timestamp(1615304991643) == pytest.approx(1615304991.643)
    assert normalize_event_timestamp(1615304991) == 1615304991
    assert normalize_event_timestamp(0) == 0


# --- CAEP events --------------------------------------------------------------------------------


def test_session_revoked_needs_no_claims() -> None:  # R-CAEP-4
    check("session-revoked", {})


def test_token_claims_change_requires_claims() -> None:  # R-CAEP-5
    rejects("token-claims-change", {"event_timestamp": 1}, "missing required claim.*claims")


@pytest.mark.parametrize(
    ("value", "match"), [({}, "must contain at least 1 properties"), ("role", "must be object")]
)
def test_token_claims_change_claims_is_a_non_empty_object(value: Any, match: str) -> None:  # R-CAEP-5
    rejects("token-claims-change", {"claims": value}, rf"data\.claims {match}")


@pytest.mark.parametrize("missing", ["credential_type", "change_type"])
def test_credential_change_requires_type_and_change(missing: str) -> None:  # R-CAEP-6
    claims = dict(MINIMAL["credential-change"])
    del claims[missing]
    rejects("credential-change", claims, f"missing required claim.*{missing}")


@pytest.mark.parametrize("credential_type", [*CREDENTIAL_TYPES, "passkey-agreed-out-of-band"])
def test_credential_change_accepts_listed_and_agreed_credential_types(credential_type: str) -> None:
    # R-CAEP-6: "or a value both sides agreed on"
    check("credential-change", {"credential_type": credential_type, "change_type": "create"})


def test_credential_change_refuses_empty_credential_type() -> None:  # R-CAEP-6
    rejects("credential-change", {"credential_type": "", "change_type": "create"}, "credential_type")


@pytest.mark.parametrize("change_type", ["create", "revoke", "update", "delete"])
def test_credential_change_change_type_values(change_type: str) -> None:  # R-CAEP-6
    check("credential-change", {"credential_type": "fido2-roaming", "change_type": change_type})


def test_credential_change_change_type_is_a_closed_list() -> None:  # R-CAEP-6
    rejects("credential-change", {"credential_type": "pin", "change_type": "rotate"}, "change_type")


def test_credential_change_optional_claims_are_strings() -> None:  # R-CAEP-6
    claims = {**MINIMAL["credential-change"], "friendly_name": "Jane's USB key", "x509_serial": "0x0f"}
    check("credential-change", claims)
    rejects("credential-change", {**claims, "fido2_aaguid": 12}, r"data\.fido2_aaguid must be string")


def test_assurance_level_change_requires_namespace_and_current_level() -> None:  # R-CAEP-7
    rejects("assurance-level-change", {"current_level": "nist-aal2"}, "namespace")
    rejects("assurance-level-change", {"namespace": "RFC8176"}, "current_level")


def test_assurance_level_change_accepts_a_custom_namespace_and_a_direction() -> None:  # R-CAEP-7
    claims = {"namespace": "acme-levels", "current_level": "gold", "previous_level": "silver"}
    check("assurance-level-change", {**claims, "change_direction": "increase"})
    rejects("assurance-level-change", {**claims, "change_direction": "up"}, "change_direction")


@pytest.mark.parametrize("field", ["previous_status", "current_status"])
def test_device_compliance_change_statuses_are_an_enum(field: str) -> None:  # R-CAEP-8
    claims = {**MINIMAL["device-compliance-change"], field: "unknown"}
    rejects("device-compliance-change", claims, rf"data\.{field} must be one of")


def test_device_compliance_change_requires_both_statuses() -> None:  # R-CAEP-8
    rejects("device-compliance-change", {"current_status": "compliant"}, "previous_status")


def test_session_established_amr_is_an_array_of_strings() -> None:  # R-CAEP-9
    check("session-established", {"fp_ua": "abc", "acr": "AAL2", "amr": ["pwd", "otp"], "ext_id": "12345"})
    rejects("session-established", {"amr": "pwd"}, r"data\.amr must be array")
    rejects("session-established", {"amr": ["pwd", 2]}, r"data\.amr\[1\] must be string")


def test_session_presented_optional_claims_are_strings() -> None:  # R-CAEP-10
    check("session-presented", {"fp_ua": "abc", "ext_id": "12345"})
    rejects("session-presented", {"ext_id": 12345}, r"data\.ext_id must be string")


def test_risk_level_change_requires_principal_and_current_level() -> None:  # R-CAEP-11
    rejects("risk-level-change", {"current_level": "LOW"}, "principal")
    rejects("risk-level-change", {"principal": "USER"}, "current_level")


def test_risk_level_change_accepts_other_principal_kinds() -> None:  # R-CAEP-11
    check("risk-level-change", {"principal": "AGENT", "current_level": "LOW", "previous_level": "HIGH"})


@pytest.mark.parametrize("field", ["current_level", "previous_level"])
def test_risk_levels_are_upper_case_low_medium_high(field: str) -> None:  # R-CAEP-11
    claims = {**MINIMAL["risk-level-change"], field: "low"}
    rejects("risk-level-change", claims, rf"data\.{field} must be one of \['LOW', 'MEDIUM', 'HIGH'\]")


# --- RISC events --------------------------------------------------------------------------------


def test_account_disabled_reason_values() -> None:  # R-RISC-3
    check("account-disabled", {"reason": "hijacking"})
    check("account-disabled", {"reason": "bulk-account"})
    rejects("account-disabled", {"reason": "fraud"}, r"data\.reason must be one of")


def test_identifier_changed_new_value_is_a_string() -> None:  # R-RISC-4
    check("identifier-changed", {"new-value": "john.roe@example.com"})
    rejects("identifier-changed", {"new-value": ["x"]}, r"data\.new-value must be string")


@pytest.mark.parametrize("name", ["identifier-changed", "identifier-recycled"])
@pytest.mark.parametrize(
    "subject",
    [
        {"format": "email", "email": "foo@example.com"},
        {"format": "phone_number", "phone_number": "+12065550100"},
        {"format": "phone", "phone_number": "+12065550100"},  # AMB-4 spelling
    ],
)
def test_identifier_events_take_an_email_or_phone_subject(name: str, subject: dict[str, Any]) -> None:
    check(name, {}, subject)  # R-RISC-4, R-RISC-5


@pytest.mark.parametrize("name", ["identifier-changed", "identifier-recycled"])
def test_identifier_events_refuse_other_subjects(name: str) -> None:  # R-RISC-4, R-RISC-5
    subject = {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "7"}
    with pytest.raises(InvalidEvent, match="subject must be email or phone_number, not 'iss_sub'"):
        check(name, {}, subject)


def test_other_events_take_any_subject() -> None:
    check("session-revoked", {}, {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "7"})


def test_credential_compromise_requires_credential_type() -> None:  # R-RISC-6
    rejects("credential-compromise", {"event_timestamp": 1}, "missing required claim.*credential_type")
    check("credential-compromise", {"credential_type": "password", "reason_user": {"en": "Reset it"}})
    rejects("credential-compromise", {"credential_type": "pin", "reason_admin": {}}, "reason_admin")
