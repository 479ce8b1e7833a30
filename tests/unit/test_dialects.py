"""Reading upstream SETs in every dialect the hub accepts (hub.core.dialects, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.core.dialects import UPSTREAM_CLAIM, read_inbound, upstream_claim
from hub.errors import InvalidEvent

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
SSE = "https://schemas.openid.net/secevent/sse/event-type/"
ALICE = {"format": "email", "email": "alice@example.com"}


def set_claims(events: dict[str, Any], **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": "https://idp.example", "jti": "up-1", "iat": 1700000000, "aud": "h"}
    claims["sub_id"] = ALICE
    claims["events"] = events
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_an_ssf_1_0_set_reads_as_is() -> None:
    inbound = read_inbound(set_claims({CAEP + "session-revoked": {"event_timestamp": 1700000000}}, txn="t-1"))

    assert (inbound.iss, inbound.jti, inbound.txn) == ("https://idp.example", "up-1", "t-1")
    assert inbound.subject == ALICE
    assert [(e.uri, e.claims) for e in inbound.events] == [
        (CAEP + "session-revoked", {"event_timestamp": 1700000000})
    ]
    assert inbound.correlation_txn == "t-1"


def test_without_txn_the_upstream_jti_correlates() -> None:
    assert read_inbound(set_claims({CAEP + "session-revoked": {}})).correlation_txn == "up-1"


def test_sub_id_comes_before_an_in_event_subject() -> None:  # AMB-3
    events = {CAEP + "session-revoked": {"subject": {"format": "opaque", "id": "other"}}}

    inbound = read_inbound(set_claims(events))

    assert inbound.subject == ALICE
    assert inbound.events[0].claims == {}  # SSF 1.0 carries the subject only in sub_id


def test_the_in_event_subject_with_subject_type_and_phone_is_read() -> None:  # AMB-2, AMB-3, AMB-4
    events = {
        RISC + "account-disabled": {"subject": {"subject_type": "phone", "phone_number": "+12065550100"}}
    }

    inbound = read_inbound(set_claims(events, sub_id=None))

    assert inbound.subject == {"format": "phone_number", "phone_number": "+12065550100"}


def test_no_subject_anywhere_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="no subject"):
        read_inbound(set_claims({CAEP + "session-revoked": {}}, sub_id=None))


def test_a_malformed_subject_is_refused_naming_where_it_was() -> None:
    with pytest.raises(InvalidEvent, match="sub_id"):
        read_inbound(set_claims({CAEP + "session-revoked": {}}, sub_id={"format": "email", "email": ""}))


@pytest.mark.parametrize(
    ("given", "expected"),
    [(1615304991643, 1615304991), (1615304991, 1615304991), (1615304991.5, 1615304991.5)],
)
def test_millisecond_timestamps_become_seconds(given: float, expected: float) -> None:  # AMB-16
    inbound = read_inbound(set_claims({CAEP + "session-revoked": {"event_timestamp": given}}))
    assert inbound.events[0].claims["event_timestamp"] == expected


def test_toe_fills_a_missing_event_timestamp() -> None:  # RFC 8417 toe
    inbound = read_inbound(set_claims({CAEP + "session-revoked": {}}, toe=1615304991643))
    assert inbound.events[0].claims == {"event_timestamp": 1615304991}


def test_bare_string_reasons_become_language_maps() -> None:  # AMB-16
    payload = {"reason_admin": "stolen laptop", "reason_user": {"de": "Gerät gestohlen"}}
    inbound = read_inbound(set_claims({CAEP + "session-revoked": payload}))
    assert inbound.events[0].claims == {
        "reason_admin": {"en": "stolen laptop"},
        "reason_user": {"de": "Gerät gestohlen"},
    }


def test_id1_assurance_level_change_gets_its_namespace() -> None:  # AMB-16
    payload = {"current_level": "nist-aal2", "previous_level": "nist-aal1", "change_direction": "increase"}
    inbound = read_inbound(set_claims({CAEP + "assurance-level-change": payload}))
    assert inbound.events[0].claims["namespace"] == "NIST-AAL"


def test_sessions_revoked_is_read_as_session_revoked() -> None:  # R-RISC-9
    inbound = read_inbound(set_claims({RISC + "sessions-revoked": {}}))
    assert [e.uri for e in inbound.events] == [CAEP + "session-revoked"]


def test_legacy_sse_stream_events_read_as_ssf_1_0() -> None:  # AMB-6
    events = {SSE + "verification": {"state": "s"}}
    inbound = read_inbound(set_claims(events, sub_id={"format": "opaque", "id": "stream-1"}))
    assert [(e.uri, e.event_type.family) for e in inbound.events] == [(SSF + "verification", "ssf")]


def test_aliases_of_one_event_merge_with_the_current_name_winning() -> None:  # AMB-17
    events = {
        RISC + "sessions-revoked": {"event_timestamp": 1, "initiating_entity": "admin"},
        CAEP + "session-revoked": {"event_timestamp": 2},
    }
    inbound = read_inbound(set_claims(events))
    assert [(e.uri, e.claims) for e in inbound.events] == [
        (CAEP + "session-revoked", {"event_timestamp": 2, "initiating_entity": "admin"})
    ]


def test_distinct_events_stay_distinct_and_unknown_ones_are_skipped() -> None:  # AMB-17
    events = {
        CAEP + "session-revoked": {},
        RISC + "account-disabled": {"reason": "hijacking"},
        "https://vendor.example/x": {},
    }
    inbound = read_inbound(set_claims(events))
    assert [e.uri for e in inbound.events] == [CAEP + "session-revoked", RISC + "account-disabled"]
    assert inbound.skipped == ("https://vendor.example/x",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"events": {"https://vendor.example/x": {}}}, "no event type the hub knows"),
        ({"events": {}}, "non-empty"),
        ({"events": []}, "non-empty"),
        ({"events": {CAEP + "session-revoked": []}}, "must be a JSON object"),
        ({"events": {CAEP + "credential-change": {"credential_type": "x"}}}, "change_type"),
        ({"txn": ""}, "txn"),
        ({"txn": 7}, "txn"),
        ({"jti": None}, "jti"),
    ],
)
def test_unusable_sets_are_refused(changes: dict[str, Any], message: str) -> None:
    claims = set_claims({CAEP + "session-revoked": {}})
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    with pytest.raises(InvalidEvent, match=message):
        read_inbound(claims)


def test_an_optional_claim_that_does_not_fit_refuses_only_a_strict_issuers_set() -> None:
    claims = set_claims({CAEP + "session-revoked": {"event_timestamp": -5}})

    (event,) = read_inbound(claims).events
    assert event.claims == {}
    assert [(c.member, c.action) for c in event.tolerated] == [("event_timestamp", "dropped")]
    with pytest.raises(InvalidEvent, match="event_timestamp"):
        read_inbound(claims, strict=True)


def test_an_sse_id1_stream_event_may_name_no_subject() -> None:  # AMB-7
    inbound = read_inbound(set_claims({SSE + "verification": {"state": "s-1"}}, sub_id=None))

    assert inbound.subject == {}
    assert [(e.uri, e.claims) for e in inbound.events] == [(SSF + "verification", {"state": "s-1"})]
    with pytest.raises(InvalidEvent, match="names no subject"):  # a revocation still needs one
        read_inbound(set_claims({SSE + "verification": {}, CAEP + "session-revoked": {}}, sub_id=None))


def test_googles_risc_verification_is_ssf_verification() -> None:
    inbound = read_inbound(set_claims({RISC + "verification": {"state": "s-2"}}))

    assert [(e.uri, e.event_type.family) for e in inbound.events] == [(SSF + "verification", "ssf")]


def test_a_risc_identifier_event_still_needs_an_identifier_subject() -> None:  # R-RISC-4
    with pytest.raises(InvalidEvent, match="email or phone_number"):
        read_inbound(set_claims({RISC + "identifier-changed": {}}, sub_id={"format": "opaque", "id": "x"}))


def test_the_upstream_claim_names_the_upstream_set() -> None:
    assert upstream_claim("https://idp.example", "up-1") == {
        UPSTREAM_CLAIM: {"iss": "https://idp.example", "jti": "up-1"}
    }
    assert ":" in UPSTREAM_CLAIM  # a URI: collision-resistant (RFC 7519 §4.2)
