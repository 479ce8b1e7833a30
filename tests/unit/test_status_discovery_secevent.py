"""Stream status (R-STATUS-*), discovery metadata (R-DISC-*) and SET claims (R-SET-*)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from hub.core.discovery import metadata, well_known_path
from hub.core.model import POLL_METHOD, PUSH_METHOD, Delivery, Status, Stream
from hub.core.secevent import build_set_claims, check_set_claims
from hub.core.status import REASON_MAX, StatusUpdate, must_announce, parse_status_update, status_object
from hub.errors import InvalidEvent, InvalidRequest
from receivers.events import CAEP_BASE

ISSUER = "https://hub.example.com"
REVOKED = CAEP_BASE + "session-revoked"
CRED_CHANGE = CAEP_BASE + "credential-change"
ALICE = {"format": "email", "email": "alice@example.com"}

# --- status (R-STATUS-1, -3, -7) ----------------------------------------------------------------


def test_a_status_update_parses_stream_id_status_and_reason() -> None:  # R-STATUS-3
    update = parse_status_update({"stream_id": "s1", "status": "paused", "reason": "maintenance"})
    assert update == StatusUpdate("s1", Status.PAUSED, "maintenance")


@pytest.mark.parametrize("reason", [None, ""])
def test_a_missing_or_empty_reason_is_none(reason: str | None) -> None:
    assert parse_status_update({"stream_id": "s1", "status": "enabled", "reason": reason}).reason is None


def test_a_long_reason_is_truncated() -> None:
    long = parse_status_update({"stream_id": "s1", "status": "disabled", "reason": "r" * (REASON_MAX + 1)})
    assert long.reason == "r" * REASON_MAX


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (["s1", "paused"], "JSON object"),
        ({"status": "paused"}, "stream_id"),
        ({"stream_id": "", "status": "paused"}, "stream_id"),
        ({"stream_id": 7, "status": "paused"}, "stream_id"),
        ({"stream_id": "s1"}, "status must be"),
        ({"stream_id": "s1", "status": "PAUSED"}, "status must be"),
        ({"stream_id": "s1", "status": "deleted"}, "status must be"),
        ({"stream_id": "s1", "status": 1}, "status must be"),
        ({"stream_id": "s1", "status": "paused", "reason": 5}, "reason"),
    ],
)
def test_bad_status_updates_are_refused(body: Any, match: str) -> None:  # R-STATUS-3: 400
    with pytest.raises(InvalidRequest, match=match):
        parse_status_update(body)


def _stream(status: Status, reason: str | None) -> Stream:
    return Stream(
        "s1", "agent", ISSUER, "agent", Delivery(POLL_METHOD), (), status=status, status_reason=reason
    )


def test_the_status_object_has_a_reason_only_when_there_is_one() -> None:  # R-STATUS-1
    assert status_object(_stream(Status.ENABLED, None)) == {"stream_id": "s1", "status": "enabled"}
    assert status_object(_stream(Status.PAUSED, "quota")) == {
        "stream_id": "s1",
        "status": "paused",
        "reason": "quota",
    }


@pytest.mark.parametrize(("old", "new"), list(itertools.product(Status, repeat=2)))
def test_only_transmitter_initiated_changes_are_announced(old: Status, new: Status) -> None:  # R-STATUS-7
    assert must_announce(old, new, by_transmitter=True) is (old is not new)
    assert must_announce(old, new, by_transmitter=False) is False


# --- discovery (R-DISC-1, -4, -5, -7) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "path"),
    [
        ("https://tr.example.com", "/.well-known/ssf-configuration"),
        ("https://tr.example.com/", "/.well-known/ssf-configuration"),
        ("https://tr.example.com/issuer1", "/.well-known/ssf-configuration/issuer1"),
        ("https://tr.example.com/issuer1/", "/.well-known/ssf-configuration/issuer1"),
        ("https://tr.example.com:8443/a/b", "/.well-known/ssf-configuration/a/b"),
    ],
)
def test_the_well_known_segment_goes_between_host_and_path(issuer: str, path: str) -> None:  # R-DISC-1
    assert well_known_path(issuer) == path


ENDPOINTS = (
    "jwks_uri",
    "configuration_endpoint",
    "status_endpoint",
    "add_subject_endpoint",
    "remove_subject_endpoint",
    "verification_endpoint",
)


def test_metadata_names_the_issuer_and_every_endpoint_under_it() -> None:  # R-DISC-4, DESIGN contract
    meta = metadata(ISSUER + "/", delivery_methods=[POLL_METHOD], default_subjects="NONE")
    assert meta["issuer"] == ISSUER  # equal to every SET's iss, so no trailing slash
    assert meta["spec_version"] == "1_0"
    assert meta["delivery_methods_supported"] == [POLL_METHOD]
    assert meta["default_subjects"] == "NONE"
    urls = [meta[name] for name in ENDPOINTS]
    assert all(url.startswith(ISSUER + "/") for url in urls)
    assert len(set(urls)) == len(ENDPOINTS)


def test_metadata_offers_oauth_as_the_interop_profile_asks() -> None:  # R-DISC-7
    meta = metadata(ISSUER, delivery_methods=[POLL_METHOD, PUSH_METHOD], default_subjects="ALL")
    assert {"spec_urn": "urn:ietf:rfc:6749"} in meta["authorization_schemes"]
    assert meta["delivery_methods_supported"] == [POLL_METHOD, PUSH_METHOD]


def test_metadata_omits_empty_arrays() -> None:  # R-DISC-5
    meta = metadata(ISSUER, delivery_methods=(), default_subjects="NONE", critical_subject_members=())
    assert [name for name, value in meta.items() if value == []] == []
    assert "delivery_methods_supported" not in meta
    assert "critical_subject_members" not in meta


def test_metadata_lists_critical_subject_members_when_there_are_some() -> None:  # R-DISC-4, R-SUB-9
    meta = metadata(
        ISSUER, delivery_methods=[POLL_METHOD], default_subjects="NONE", critical_subject_members=["user"]
    )
    assert meta["critical_subject_members"] == ["user"]


# --- SET claims (R-SET-1, -5, -7, -9, -10, -11; AMB-14) ------------------------------------------


def build(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "agent-1",
        "jti": "jti-1",
        "iat": 1_700_000_000,
        "event_uri": REVOKED,
        "event_claims": {"event_timestamp": 1_700_000_000},
        "sub_id": ALICE,
    }
    return build_set_claims(**{**values, **changes})


def test_a_built_set_has_the_registered_claims_and_one_event() -> None:  # R-SET-1, R-SET-7, AMB-14
    claims = build()
    assert claims == {
        "iss": ISSUER,
        "aud": "agent-1",
        "jti": "jti-1",
        "iat": 1_700_000_000,
        "sub_id": ALICE,  # R-SET-11: top level, not inside the event
        "events": {REVOKED: {"event_timestamp": 1_700_000_000}},
    }
    assert "sub" not in claims  # R-SET-9
    assert "exp" not in claims  # R-SET-10


def test_txn_is_present_only_when_given() -> None:  # R-SET-5
    assert "txn" not in build()
    assert build(txn="cause-42")["txn"] == "cause-42"


def test_extension_claims_are_added() -> None:  # R-SET-15, AMB-18
    assert (
        build(extra={"upstream_iss": "https://idp.example.com"})["upstream_iss"] == "https://idp.example.com"
    )


@pytest.mark.parametrize("name", ["iss", "aud", "jti", "iat", "sub_id", "events", "txn", "sub", "exp"])
def test_extension_claims_cannot_override_or_add_registered_ones(name: str) -> None:  # R-SET-9/-10
    with pytest.raises(InvalidEvent, match=f"claim {name} cannot be set"):
        build(txn="cause-42", extra={name: "smuggled"})


def test_the_built_claims_do_not_alias_the_inputs() -> None:
    subject = dict(ALICE)
    event = {"event_timestamp": 1}
    claims = build(sub_id=subject, event_claims=event)
    subject["email"] = "mallory@example.com"
    event["extra"] = 1
    assert claims["sub_id"] == ALICE
    assert claims["events"][REVOKED] == {"event_timestamp": 1}


def test_a_built_set_passes_the_check() -> None:
    assert check_set_claims(build(txn="t")) == (REVOKED, {"event_timestamp": 1_700_000_000})


@pytest.mark.parametrize("name", ["iss", "jti", "iat", "events", "sub_id"])
def test_a_set_lacking_a_required_claim_is_refused(name: str) -> None:  # R-SET-1, R-SET-11
    claims = build()
    del claims[name]
    with pytest.raises(InvalidEvent, match=f"lacks the {name}"):
        check_set_claims(claims)


@pytest.mark.parametrize("name", ["sub", "exp"])
def test_a_set_carrying_sub_or_exp_is_refused(name: str) -> None:  # R-SET-9, R-SET-10
    with pytest.raises(InvalidEvent, match=f"must not carry {name}"):
        check_set_claims({**build(), name: "x"})


@pytest.mark.parametrize("iat", [1.5, "1700000000", True, None])
def test_iat_must_be_whole_seconds(iat: Any) -> None:  # R-SET-3
    with pytest.raises(InvalidEvent, match="iat"):
        check_set_claims({**build(), "iat": iat})


@pytest.mark.parametrize("events", [{}, {REVOKED: {}, CRED_CHANGE: {}}, [REVOKED], REVOKED])
def test_events_must_hold_exactly_one_event(events: Any) -> None:  # R-SET-6, R-SET-7
    with pytest.raises(InvalidEvent, match="exactly one event"):
        check_set_claims({**build(), "events": events})


def test_the_event_value_must_be_an_object() -> None:  # R-SET-6
    with pytest.raises(InvalidEvent, match="JSON object"):
        check_set_claims({**build(), "events": {REVOKED: "revoked"}})


def test_a_malformed_sub_id_is_refused() -> None:  # R-SUB-1
    with pytest.raises(InvalidEvent):
        check_set_claims({**build(), "sub_id": {"format": "email"}})


def test_a_known_event_is_checked_against_its_type() -> None:  # R-CAEP-6: credential_type required
    with pytest.raises(InvalidEvent, match="credential_type"):
        check_set_claims(build(event_uri=CRED_CHANGE, event_claims={"change_type": "revoke"}))


def test_an_unknown_event_type_passes_with_its_claims() -> None:  # R-SET-15
    uri = "https://example.com/event-type/custom"
    assert check_set_claims(build(event_uri=uri, event_claims={"anything": [1]})) == (uri, {"anything": [1]})
