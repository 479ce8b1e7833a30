"""Subject identifiers: formats, canonical keys and the SSF matching rule (spec §2)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.subjects import stream_subject, validate_subject
from hub.errors import InvalidEvent
from receivers.subjects import index_keys, subject_key, subjects_match

# One valid example per format (R-SUB-2, R-SUB-5), with the member to tamper with.
VALID: dict[str, tuple[dict[str, Any], str]] = {
    "account": ({"format": "account", "uri": "acct:example.user@service.example.com"}, "uri"),
    "email": ({"format": "email", "email": "user@example.com"}, "email"),
    "iss_sub": ({"format": "iss_sub", "iss": "https://issuer.example.com/", "sub": "145234573"}, "sub"),
    "opaque": ({"format": "opaque", "id": "11112222333344445555"}, "id"),
    "phone_number": ({"format": "phone_number", "phone_number": "+12065550100"}, "phone_number"),
    "did": ({"format": "did", "url": "did:example:123456/did/url/path?versionId=1"}, "url"),
    "uri": ({"format": "uri", "uri": "https://user.example.com/"}, "uri"),
    "jwt_id": ({"format": "jwt_id", "iss": "https://idp.example.com/", "jti": "B70BA622"}, "jti"),
    "saml_assertion_id": (
        {"format": "saml_assertion_id", "issuer": "https://idp.example.com/", "assertion_id": "_8e8dc5f"},
        "assertion_id",
    ),
}
ALICE = {"format": "email", "email": "alice@example.com"}
BOB = {"format": "email", "email": "bob@example.com"}
LAPTOP = {"format": "opaque", "id": "laptop-1"}
ACME = {"format": "opaque", "id": "tenant-acme"}
OTHER_TENANT = {"format": "opaque", "id": "tenant-other"}


def invalid(obj: Any, match: str, **kwargs: Any) -> None:
    with pytest.raises(InvalidEvent, match=match):
        validate_subject(obj, **kwargs)


def complex_(**named: dict[str, Any]) -> dict[str, Any]:
    return {"format": "complex", **named}


# --- validation: simple formats -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_each_format_accepts_its_example_and_returns_a_copy(fmt: str) -> None:  # R-SUB-2, R-SUB-5
    subject, _ = VALID[fmt]
    checked = validate_subject(subject)
    assert checked == subject
    assert checked is not subject


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_each_format_refuses_a_missing_member(fmt: str) -> None:  # R-SUB-1
    subject, member = VALID[fmt]
    invalid({k: v for k, v in subject.items() if k != member}, f"missing member.*{member}")


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_each_format_refuses_an_extra_member(fmt: str) -> None:  # R-SUB-1
    subject, _ = VALID[fmt]
    invalid({**subject, "nickname": "al"}, "does not define: nickname")


@pytest.mark.parametrize("fmt", sorted(VALID))
@pytest.mark.parametrize("bad", ["", None, 42, ["x"]])
def test_each_format_refuses_empty_or_non_string_members(fmt: str, bad: Any) -> None:  # R-SUB-2
    subject, member = VALID[fmt]
    invalid({**subject, member: bad}, rf"subject\.{member} must be a non-empty string")


@pytest.mark.parametrize(
    ("subject", "match"),
    [
        ({"format": "account", "uri": "mailto:user@example.com"}, "acct: URI"),
        ({"format": "account", "uri": "acct:"}, "acct: URI"),
        ({"format": "email", "email": "user.example.com"}, "local@domain"),
        ({"format": "email", "email": "@example.com"}, "local@domain"),
        ({"format": "email", "email": "user@"}, "local@domain"),
        ({"format": "phone_number", "phone_number": "12065550100"}, "E.164"),
        ({"format": "phone_number", "phone_number": "+1 206 555 0100"}, "E.164"),
        ({"format": "phone_number", "phone_number": "+0123"}, "E.164"),
        ({"format": "phone_number", "phone_number": "+1234567890123456"}, "E.164"),
        ({"format": "phone_number", "phone_number": "+12065550100\n"}, "E.164"),
        ({"format": "did", "url": "https://example.com/"}, "DID URL"),
        ({"format": "uri", "uri": "no-scheme-here"}, "URI with a scheme"),
        ({"format": "uri", "uri": "https://a b/"}, "URI with a scheme"),
    ],
)
def test_format_specific_value_rules(subject: dict[str, Any], match: str) -> None:  # R-SUB-2
    invalid(subject, match)


def test_account_scheme_is_case_insensitive() -> None:  # RFC 3986 §3.1
    validate_subject({"format": "account", "uri": "ACCT:user@example.com"})


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ("user@example.com", "must be a JSON object"),
        ({"email": "user@example.com"}, "must have a format member"),
        ({"format": "", "id": "x"}, r"subject\.format must be a non-empty string"),
        ({"format": 7, "id": "x"}, r"subject\.format must be a non-empty string"),
    ],
)
def test_a_subject_is_an_object_with_a_format(obj: Any, match: str) -> None:  # R-SUB-1
    invalid(obj, match)


def test_the_error_path_names_where_the_subject_came_from() -> None:
    invalid({"format": "email", "email": ""}, r"^sub_id\.email must", path="sub_id")


# --- validation: legacy spellings (AMB-2, AMB-4) ------------------------------------------------


def test_phone_is_accepted_and_normalized_to_phone_number() -> None:  # AMB-4
    checked = validate_subject({"format": "phone", "phone_number": "+12065550100"})
    assert checked == {"format": "phone_number", "phone_number": "+12065550100"}


@pytest.mark.parametrize(("old", "new"), [("jwt-id", "jwt_id"), ("saml-assertion-id", "saml_assertion_id")])
def test_id1_format_spellings_are_normalized(old: str, new: str) -> None:  # AMB-4
    example, _ = VALID[new]
    assert validate_subject({**example, "format": old}) == example


def test_subject_type_stands_in_for_format() -> None:  # AMB-2 (Google RISC)
    assert validate_subject({"subject_type": "email", "email": "a@example.com"}) == {
        "format": "email",
        "email": "a@example.com",
    }
    both = {"format": "email", "subject_type": "iss_sub", "email": "a@example.com"}
    assert validate_subject(both) == {"format": "email", "email": "a@example.com"}


# --- validation: aliases, ip-addresses, proprietary, complex ------------------------------------


def test_aliases_holds_simple_identifiers() -> None:  # R-SUB-2
    validate_subject({"format": "aliases", "identifiers": [ALICE, VALID["opaque"][0]]})


@pytest.mark.parametrize(
    ("identifiers", "match"),
    [
        ([], "non-empty array"),
        (ALICE, "non-empty array"),
        ([{"format": "aliases", "identifiers": [ALICE]}], r"identifiers\[0\] must be a simple.*not aliases"),
        ([ALICE, complex_(user=ALICE)], r"identifiers\[1\] must be a simple.*not complex"),
        ([ALICE, {"format": "email", "email": ""}], r"identifiers\[1\]\.email must be a non-empty string"),
    ],
)
def test_aliases_refusals(identifiers: Any, match: str) -> None:  # R-SUB-2
    invalid({"format": "aliases", "identifiers": identifiers}, match)


def test_ip_addresses_holds_v4_and_v6_addresses() -> None:  # R-SUB-5
    validate_subject({"format": "ip-addresses", "ip-addresses": ["10.29.37.75", "2001:db8::1"]})


@pytest.mark.parametrize(
    ("addresses", "match"),
    [
        ([], "non-empty array"),
        ("10.0.0.1", "non-empty array"),
        (["10.0.0.1", "10.0.0.300"], r"ip-addresses\[1\] must be an IPv4 or IPv6 address"),
        (["example.com"], r"ip-addresses\[0\]"),
        ([167772161], r"ip-addresses\[0\]"),  # an int would pass ipaddress.ip_address
    ],
)
def test_ip_addresses_refusals(addresses: Any, match: str) -> None:  # R-SUB-5
    invalid({"format": "ip-addresses", "ip-addresses": addresses}, match)


def test_proprietary_formats_agreed_out_of_band_are_accepted() -> None:  # R-SUB-6
    subject = {"format": "catalog_item", "catalog_id": "c0384", "item_id": "123"}
    assert validate_subject(subject) == subject


@pytest.mark.parametrize("bad", [{"format": "catalog_item"}, {"format": "catalog_item", "item_id": ""}])
def test_proprietary_formats_need_non_empty_members(bad: dict[str, Any]) -> None:  # R-SUB-6
    invalid(bad, "catalog_item|non-empty value")


def test_complex_subject_with_simple_members() -> None:  # R-SUB-7
    subject = complex_(
        user=ALICE, device=LAPTOP, tenant=ACME, workload={"format": "uri", "uri": "spiffe://a/b"}
    )
    assert validate_subject(subject) == subject


def test_complex_members_are_validated_and_normalized() -> None:  # R-SUB-7, AMB-4
    checked = validate_subject(complex_(user={"format": "phone", "phone_number": "+12065550100"}))
    assert checked["user"] == {"format": "phone_number", "phone_number": "+12065550100"}
    invalid(complex_(user={"format": "email", "email": "nope"}), r"subject\.user\.email must be an email")


@pytest.mark.parametrize(
    ("subject", "match"),
    [
        ({"format": "complex"}, "at least one member"),
        (complex_(user=complex_(user=ALICE)), r"subject\.user must be a simple.*not complex"),
        (complex_(user={"format": "aliases", "identifiers": [ALICE]}), r"subject\.user .*not aliases"),
        ({"format": "complex", "user": "alice"}, r"subject\.user must be a JSON object"),
    ],
)
def test_complex_refusals(subject: dict[str, Any], match: str) -> None:  # R-SUB-7
    invalid(subject, match)


def test_complex_can_be_refused_where_only_simple_subjects_fit() -> None:
    validate_subject(ALICE, allow_complex=False)
    invalid(complex_(user=ALICE), "not complex", allow_complex=False)


def test_stream_subject_is_the_opaque_stream_id() -> None:  # R-SUB-11, R-SSFEV-1
    assert stream_subject("f67e39a0") == {"format": "opaque", "id": "f67e39a0"}
    assert validate_subject(stream_subject("f67e39a0")) == stream_subject("f67e39a0")


# --- canonical keys -----------------------------------------------------------------------------


def test_email_domain_is_case_insensitive_but_local_part_is_not() -> None:  # R-SUB-4
    assert subject_key(ALICE) == subject_key({"format": "email", "email": "alice@EXAMPLE.Com"})
    assert subject_key(ALICE) != subject_key({"format": "email", "email": "Alice@example.com"})


def test_other_formats_compare_exactly() -> None:
    a = {"format": "iss_sub", "iss": "https://idp.example.com/", "sub": "abc"}
    assert subject_key(a) != subject_key({**a, "sub": "ABC"})
    assert subject_key(a) != subject_key({**a, "iss": "https://idp.example.com"})
    assert subject_key(a) == subject_key(dict(reversed(a.items())))


def test_keys_tell_formats_apart() -> None:
    assert subject_key({"format": "opaque", "id": "x"}) != subject_key({"format": "uri", "uri": "x"})
    assert subject_key({"format": "account", "uri": "acct:a@b"}) != subject_key(
        {"format": "uri", "uri": "acct:a@b"}
    )


def test_phone_spelling_does_not_change_the_key() -> None:  # AMB-4
    phone = {"format": "phone", "phone_number": "+12065550100"}
    assert subject_key(phone) == subject_key(VALID["phone_number"][0])


def test_ip_address_order_and_spelling_do_not_change_the_key() -> None:  # R-SUB-5
    a = {"format": "ip-addresses", "ip-addresses": ["10.0.0.1", "2001:DB8:0::1"]}
    b = {"format": "ip-addresses", "ip-addresses": ["2001:db8::1", "10.0.0.1", "10.0.0.1"]}
    assert subject_key(a) == subject_key(b)


def test_complex_key_ignores_member_order() -> None:
    assert subject_key(complex_(user=ALICE, tenant=ACME)) == subject_key(complex_(tenant=ACME, user=ALICE))
    assert subject_key(complex_(user=ALICE)) != subject_key(complex_(device=ALICE))


def test_index_keys_of_each_shape() -> None:
    assert index_keys(ALICE) == [subject_key(ALICE)]
    assert index_keys({"format": "aliases", "identifiers": [ALICE, BOB, ALICE]}) == [
        subject_key(ALICE),
        subject_key(BOB),
    ]
    assert index_keys(complex_(user=ALICE, tenant=ACME)) == [subject_key(ALICE), subject_key(ACME)]
    ips = index_keys({"format": "ip-addresses", "ip-addresses": ["10.0.0.1", "10.0.0.2"]})
    assert ips == [
        subject_key({"format": "ip-addresses", "ip-addresses": [a]}) for a in ("10.0.0.1", "10.0.0.2")
    ]


# --- matching (R-SUB-10, R-SUB-12) --------------------------------------------------------------


def test_simple_subjects_match_only_when_identical() -> None:  # R-SUB-10
    assert subjects_match(ALICE, {"format": "email", "email": "alice@Example.COM"})
    assert not subjects_match(ALICE, BOB)


def test_tenant_only_registration_gets_events_for_a_user_in_that_tenant() -> None:  # R-SUB-10
    assert subjects_match(complex_(tenant=ACME), complex_(user=ALICE, tenant=ACME))
    assert not subjects_match(complex_(tenant=ACME), complex_(user=ALICE, tenant=OTHER_TENANT))


def test_user_and_device_registration_matches_an_event_with_only_the_user() -> None:  # R-SUB-10
    assert subjects_match(complex_(user=ALICE, device=LAPTOP), complex_(user=ALICE))
    assert not subjects_match(complex_(user=ALICE, device=LAPTOP), complex_(user=BOB))


def test_a_differing_group_means_no_match() -> None:  # R-SUB-10
    group_a, group_b = {"format": "opaque", "id": "admins"}, {"format": "opaque", "id": "users"}
    assert not subjects_match(complex_(user=ALICE, group=group_a), complex_(user=ALICE, group=group_b))


def test_complex_subjects_with_no_member_in_common_do_not_match() -> None:  # R-SUB-12 hub choice
    assert not subjects_match(complex_(tenant=ACME), complex_(device=LAPTOP))


def test_simple_subject_matches_a_complex_one_holding_it() -> None:  # R-SUB-12 hub choice
    assert subjects_match(ALICE, complex_(user=ALICE, tenant=ACME))
    assert subjects_match(complex_(user=ALICE, tenant=ACME), ACME)
    assert not subjects_match(BOB, complex_(user=ALICE, tenant=ACME))


def test_aliases_match_when_any_identifier_matches() -> None:  # R-SUB-12 hub choice
    aliases = {"format": "aliases", "identifiers": [BOB, {"format": "opaque", "id": "u-7"}]}
    assert subjects_match(aliases, {"format": "opaque", "id": "u-7"})
    assert subjects_match(BOB, aliases)
    assert subjects_match(complex_(user=BOB), aliases)
    assert not subjects_match(aliases, ALICE)


def test_ip_addresses_match_when_they_share_an_address() -> None:  # R-SUB-12 hub choice
    registered = {"format": "ip-addresses", "ip-addresses": ["10.0.0.1", "2001:db8::1"]}
    assert subjects_match(registered, {"format": "ip-addresses", "ip-addresses": ["2001:DB8::1"]})
    assert not subjects_match(registered, {"format": "ip-addresses", "ip-addresses": ["10.0.0.2"]})


def test_stream_subject_matches_only_its_own_stream() -> None:  # R-SUB-11
    assert subjects_match(stream_subject("s1"), stream_subject("s1"))
    assert not subjects_match(stream_subject("s1"), stream_subject("s2"))


# --- property: the index never hides a match ----------------------------------------------------

# Small pools so that generated subjects collide often enough to exercise matches.
_emails = st.builds(
    lambda local, domain: {"format": "email", "email": f"{local}@{domain}"},
    st.sampled_from(["a", "b", "A"]),
    st.sampled_from(["x.com", "X.COM", "y.org"]),
)
_opaques = st.builds(lambda i: {"format": "opaque", "id": i}, st.sampled_from(["1", "2", "3"]))
_phones = st.builds(
    lambda fmt, n: {"format": fmt, "phone_number": n},
    st.sampled_from(["phone", "phone_number"]),
    st.sampled_from(["+12065550100", "+4930123456"]),
)
_ips = st.builds(
    lambda addrs: {"format": "ip-addresses", "ip-addresses": addrs},
    st.lists(
        st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", "0:0::1", "2001:db8::1"]), min_size=1, max_size=3
    ),
)
_plain = st.one_of(_emails, _opaques, _phones, _ips)
_aliases = st.builds(
    lambda ids: {"format": "aliases", "identifiers": ids}, st.lists(_plain, min_size=1, max_size=3)
)
_complex = st.builds(
    lambda named: {"format": "complex", **named},
    st.dictionaries(st.sampled_from(["user", "device", "tenant", "group"]), _plain, min_size=1, max_size=3),
)
subjects = st.one_of(_plain, _aliases, _complex)


@settings(database=None, max_examples=400)
@given(subjects, subjects)
def test_every_match_shares_an_index_key(registered: dict[str, Any], event: dict[str, Any]) -> None:
    validate_subject(registered)
    validate_subject(event)
    if subjects_match(registered, event):
        assert set(index_keys(registered)) & set(index_keys(event))


@settings(database=None, max_examples=200)
@given(subjects, subjects)
def test_matching_is_symmetric(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert subjects_match(a, b) == subjects_match(b, a)


@settings(database=None, max_examples=200)
@given(subjects)
def test_a_subject_matches_itself_and_its_normalized_form(subject: dict[str, Any]) -> None:
    normalized = validate_subject(subject)
    assert subjects_match(subject, subject)
    assert subjects_match(subject, normalized)
    assert subject_key(normalized) == subject_key(subject)
