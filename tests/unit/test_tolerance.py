"""Repairing the optional claims of an upstream event (hub.core.tolerance.repair, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.core.tolerance import Change, repair
from hub.errors import InvalidEvent
from receivers.events import CATALOGUE

SESSION_REVOKED = CATALOGUE.resolve("session-revoked")
CREDENTIAL_CHANGE = CATALOGUE.resolve("credential-change")
VERIFICATION = CATALOGUE.resolve("verification")
ENUM_MESSAGE = "session-revoked: data.initiating_entity must be one of ['admin', 'user', 'policy', 'system']"


def actions(changes: tuple[Change, ...]) -> list[tuple[str, str, str]]:
    return [(c.event, c.member, c.action) for c in changes]


def test_claims_that_fit_come_back_unchanged() -> None:
    claims = {"event_timestamp": 1700000000, "initiating_entity": "policy", "reason_admin": {"en": "x"}}

    repaired, changes = repair(SESSION_REVOKED, claims)

    assert repaired == claims
    assert changes == ()


def test_an_enum_value_outside_the_list_is_dropped_and_unknown_claims_pass_through() -> None:
    claims = {"event_timestamp": 1700000000, "initiating_entity": "Duo policy", "duo_policy_id": "p-9"}

    repaired, changes = repair(SESSION_REVOKED, claims)

    assert repaired == {"event_timestamp": 1700000000, "duo_policy_id": "p-9"}  # R-SET-15
    assert changes == (Change("session-revoked", "initiating_entity", "dropped", ENUM_MESSAGE),)
    assert changes[0].as_dict() == {
        "event": "session-revoked",
        "member": "initiating_entity",
        "action": "dropped",
        "reason": ENUM_MESSAGE,
    }


def test_an_enum_value_in_another_case_is_mapped_to_the_listed_one() -> None:
    repaired, changes = repair(SESSION_REVOKED, {"initiating_entity": "Admin"})

    assert repaired == {"initiating_entity": "admin"}
    assert actions(changes) == [("session-revoked", "initiating_entity", "mapped")]


def test_an_iso_8601_event_timestamp_with_its_zone_is_mapped_to_seconds() -> None:
    repaired, changes = repair(SESSION_REVOKED, {"event_timestamp": "2023-11-14T22:13:20Z"})

    assert repaired == {"event_timestamp": 1700000000}
    assert actions(changes) == [("session-revoked", "event_timestamp", "mapped")]


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("event_timestamp", "2024-01-01T00:00:00"),  # no zone: whose midnight?
        ("event_timestamp", "yesterday"),
        ("event_timestamp", -5),
        ("event_timestamp", float("nan")),
        ("reason_admin", {"en": 5}),  # a language map with a non-string entry
        ("reason_user", ""),
        ("reason_user", 42),
    ],
)
def test_a_wrong_optional_claim_is_dropped(member: str, value: Any) -> None:
    repaired, changes = repair(SESSION_REVOKED, {member: value, "initiating_entity": "user"})

    assert repaired == {"initiating_entity": "user"}
    assert actions(changes) == [("session-revoked", member, "dropped")]


def test_a_plain_string_reason_becomes_an_english_language_map() -> None:  # R-CAEP-3, AMB-16
    repaired, changes = repair(
        SESSION_REVOKED, {"reason_admin": "Policy violation", "reason_user": "Signed out"}
    )

    assert repaired == {"reason_admin": {"en": "Policy violation"}, "reason_user": {"en": "Signed out"}}
    assert actions(changes) == [
        ("session-revoked", "reason_admin", "mapped"),
        ("session-revoked", "reason_user", "mapped"),
    ]


def test_null_for_an_optional_claim_is_read_as_absent() -> None:
    repaired, changes = repair(VERIFICATION, {"state": None})

    assert repaired == {}
    assert changes == (Change("verification", "state", "absent", "null, read as absent"),)
    unknown_null, none = repair(VERIFICATION, {"vendor_hint": None})
    assert (unknown_null, none) == ({"vendor_hint": None}, ())  # not ours to read


def test_several_repairs_of_one_event_are_all_listed() -> None:
    claims = {
        "credential_type": "password",
        "change_type": "update",
        "friendly_name": 7,
        "initiating_entity": None,
        "reason_admin": "rotated",
    }

    repaired, changes = repair(CREDENTIAL_CHANGE, claims)

    assert repaired == {
        "credential_type": "password",
        "change_type": "update",
        "reason_admin": {"en": "rotated"},
    }
    assert sorted(actions(changes)) == [
        ("credential-change", "friendly_name", "dropped"),
        ("credential-change", "initiating_entity", "absent"),
        ("credential-change", "reason_admin", "mapped"),
    ]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"credential_type": "password"}, "missing required claim(s) change_type"),
        ({"credential_type": "password", "change_type": "rotate"}, "data.change_type must be one of"),
        ({"credential_type": None, "change_type": "update"}, "data.credential_type must be string"),
    ],
)
def test_a_required_claim_that_does_not_fit_still_refuses(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEvent) as refused:
        repair(CREDENTIAL_CHANGE, claims)

    assert refused.value.description.startswith("credential-change: " + message)


def test_strict_refuses_what_tolerance_would_repair() -> None:
    with pytest.raises(InvalidEvent) as refused:
        repair(SESSION_REVOKED, {"initiating_entity": "Duo policy"}, strict=True)
    assert refused.value.description == ENUM_MESSAGE
    with pytest.raises(InvalidEvent) as null_state:
        repair(VERIFICATION, {"state": None}, strict=True)
    assert null_state.value.description == "verification: data.state must be string"
    # The schema itself accepts a bare-string reason (AMB-16): strict still maps it.
    assert repair(SESSION_REVOKED, {"reason_admin": "x"}, strict=True)[0] == {"reason_admin": {"en": "x"}}
