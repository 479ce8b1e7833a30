"""Subject identifiers and SSF matching in the receivers (R-SUB-1..12), consistent with the hub."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receivers import InvalidSubject, subject_key, subjects_match, validate_subject
from receivers.index import SubjectIndex
from receivers.subjects import index_keys

ALICE = {"format": "email", "email": "alice@example.com"}
ALICE_UPPER = {"format": "email", "email": "alice@EXAMPLE.com"}
ALICE_LOCAL_UPPER = {"format": "email", "email": "Alice@example.com"}
BOB = {"format": "email", "email": "bob@example.com"}
T1 = {"format": "opaque", "id": "tenant-1"}
T2 = {"format": "opaque", "id": "tenant-2"}
D1 = {"format": "opaque", "id": "device-1"}


def cx(**members: Any) -> dict[str, Any]:
    return {"format": "complex", **members}


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (ALICE, ALICE, True),  # R-SUB-10: simple subjects match when identical
        (ALICE, BOB, False),
        (ALICE, ALICE_UPPER, True),  # R-SUB-4: the email domain is case-insensitive
        (ALICE, ALICE_LOCAL_UPPER, False),  # ... the local part is not
        (cx(tenant=T1), cx(user=ALICE, tenant=T1), True),  # a missing member is a wildcard
        (cx(user=ALICE, device=D1), cx(user=ALICE), True),
        (cx(user=ALICE, tenant=T1), cx(user=ALICE, tenant=T2), False),  # a differing member
        (cx(tenant=T1), cx(device=D1), False),  # hub choice: at least one shared member name
        (ALICE, cx(user=ALICE, tenant=T1), True),  # R-SUB-12 choice: simple vs any member
        (cx(user=BOB), ALICE, False),
        ({"format": "aliases", "identifiers": [BOB, ALICE]}, ALICE, True),  # R-SUB-12: any alias
        (
            {"format": "ip-addresses", "ip-addresses": ["10.0.0.1", "::1"]},
            {"format": "ip-addresses", "ip-addresses": ["0:0::1"]},
            True,
        ),
        (
            {"format": "phone", "phone_number": "+12065550100"},
            {"format": "phone_number", "phone_number": "+12065550100"},
            True,
        ),  # AMB-4
        ({"subject_type": "email", "email": "alice@example.com"}, ALICE, True),  # AMB-2
    ],
)
def test_matching_rules(a: dict[str, Any], b: dict[str, Any], match: bool) -> None:
    assert subjects_match(a, b) is match
    assert subjects_match(b, a) is match  # symmetric


@pytest.mark.parametrize(
    "subject",
    [
        ALICE,
        {"format": "account", "uri": "acct:alice@example.com"},
        {"format": "iss_sub", "iss": "https://idp", "sub": "1"},
        {"format": "did", "url": "did:example:123"},
        {"format": "uri", "uri": "spiffe://example.org/agent"},
        {"format": "jwt_id", "iss": "https://idp", "jti": "j"},
        {"format": "saml_assertion_id", "issuer": "https://idp", "assertion_id": "a"},
        {"format": "ip-addresses", "ip-addresses": ["192.0.2.1"]},
        {"format": "aliases", "identifiers": [ALICE, BOB]},
        cx(user=ALICE, tenant=T1, workspace={"format": "opaque", "id": "w"}),
        {"format": "catalog_item", "catalog_id": "c1", "item_id": "i1"},  # R-SUB-6
    ],
)
def test_well_formed_subjects_validate(subject: dict[str, Any]) -> None:  # R-SUB-1, -2, -5, -7
    assert validate_subject(subject) == subject


@pytest.mark.parametrize(
    "subject",
    [
        "alice",
        {"email": "alice@example.com"},
        {"format": "email"},
        {"format": "email", "email": "alice"},
        {"format": "email", "email": "alice@example.com", "extra": 1},  # R-SUB-1: none extra
        {"format": "account", "uri": "mailto:alice@example.com"},
        {"format": "phone_number", "phone_number": "2065550100"},
        {"format": "ip-addresses", "ip-addresses": ["not-an-ip"]},
        {"format": "aliases", "identifiers": []},
        {"format": "aliases", "identifiers": [{"format": "aliases", "identifiers": [ALICE]}]},  # no nesting
        {"format": "complex"},
        cx(user=cx(user=ALICE)),
        {"format": "proprietary", "x": ""},
    ],
)
def test_malformed_subjects_are_refused(subject: Any) -> None:
    with pytest.raises(InvalidSubject):
        validate_subject(subject)


simple = st.one_of(
    st.builds(lambda u: {"format": "email", "email": f"{u}@example.com"}, st.sampled_from("abc")),
    st.builds(lambda i: {"format": "opaque", "id": i}, st.sampled_from(["t1", "t2", "d1"])),
)
complex_subject = st.dictionaries(
    st.sampled_from(["user", "tenant", "device", "session"]), simple, min_size=1
).map(lambda m: {"format": "complex", **m})
any_subject = st.one_of(simple, complex_subject)


@given(any_subject, any_subject)
def test_every_match_shares_an_index_key_and_is_symmetric(a: dict[str, Any], b: dict[str, Any]) -> None:
    if subjects_match(a, b):
        assert set(index_keys(a)) & set(index_keys(b))
    assert subjects_match(a, b) == subjects_match(b, a)


@given(st.lists(any_subject, max_size=8), any_subject)
def test_the_index_finds_exactly_what_a_scan_finds(
    items: list[dict[str, Any]], probe: dict[str, Any]
) -> None:
    index: SubjectIndex[int] = SubjectIndex()
    for n, subject in enumerate(items):
        index.add(n, [subject])
    assert index.matching(probe) == [n for n, s in enumerate(items) if subjects_match(s, probe)]


def test_keys_are_canonical() -> None:
    assert subject_key(ALICE) == subject_key(ALICE_UPPER)
    assert subject_key(cx(user=ALICE, tenant=T1)) == subject_key(cx(tenant=T1, user=ALICE_UPPER))
