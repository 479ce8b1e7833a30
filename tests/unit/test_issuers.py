"""Trusted issuer registrations and their limits (hub.core.issuers, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from hub.core.issuers import DEFAULT_ALGORITHMS, TrustedIssuer, parse_trusted_issuer, subject_values
from hub.errors import InvalidRequest

IDP = "https://idp.example.com"
EC_JWK = {"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k1"}


def register(**body: Any) -> TrustedIssuer:
    body.setdefault("iss", IDP)
    if "jwks" not in body:
        body.setdefault("jwks_uri", IDP + "/jwks")
    return parse_trusted_issuer({k: v for k, v in body.items() if v is not None})


def test_a_minimal_registration_gets_the_default_algorithms() -> None:
    issuer = register()
    assert issuer.algorithms == DEFAULT_ALGORITHMS == ("RS256", "ES256")
    assert issuer.event_types is None and issuer.subject_patterns is None


def test_a_record_round_trips() -> None:
    issuer = register(
        jwks_uri=None,
        jwks={"keys": [EC_JWK]},
        algorithms=["ES256"],
        event_types=["urn:x"],
        subject_patterns=["email:*@example.com"],
    )
    assert TrustedIssuer.from_record(issuer.to_record()) == issuer


def test_the_public_view_summarises_inline_keys() -> None:
    view = register(jwks_uri=None, jwks={"keys": [EC_JWK]}).public_view()
    assert view["jwks"] == {"kids": ["k1"]}


@pytest.mark.parametrize("alg", ["none", "HS256", "HS512", "RS384", "ES512", "dir"])
def test_only_the_four_asymmetric_algorithms_are_allowed(alg: str) -> None:  # R-SEC-1
    with pytest.raises(InvalidRequest, match="not allowed"):
        register(algorithms=["RS256", alg])


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "EdDSA"])
def test_each_allowed_algorithm_registers(alg: str) -> None:
    assert register(algorithms=[alg]).algorithms == (alg,)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"jwks_uri": "http://idp.example.com/jwks"}, "https"),  # R-SEC-4
        ({"jwks_uri": "https://user:pw@idp.example.com/jwks"}, "credentials"),
        ({"jwks_uri": "ftp://idp.example.com/jwks"}, "https"),
        ({"jwks_uri": 7}, "URL"),
        ({"jwks": {"keys": []}}, "JWK Set"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "symmetric"),
        ({"jwks": {"keys": [{**EC_JWK, "d": "private"}]}}, "public keys only"),
        ({"jwks": {"keys": [EC_JWK]}, "jwks_uri": IDP + "/jwks"}, "exactly one"),
        ({"iss": ""}, "iss"),
        ({"iss": " https://idp "}, "iss"),
        ({"algorithms": []}, "algorithms"),
        ({"subject_patterns": ["*@example.com"]}, "FORMAT:GLOB"),
        ({"subject_patterns": ["unknownformat:x"]}, "FORMAT:GLOB"),
        ({"event_types": "session-revoked"}, "list"),
        ({"colour": "blue"}, "unknown field"),
    ],
)
def test_bad_registrations_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        register(**body)


def test_plain_http_keys_are_allowed_only_from_this_machine() -> None:
    for host in ("127.0.0.1:8443", "localhost", "[::1]:9000"):
        assert register(jwks_uri=f"http://{host}/jwks").jwks_uri == f"http://{host}/jwks"


def test_event_types_are_resolved_by_the_given_resolver() -> None:
    issuer = parse_trusted_issuer(
        {"iss": IDP, "jwks_uri": IDP + "/jwks", "event_types": ["a", "b", "a"]},
        resolve_event=lambda name: f"urn:event:{name}",
    )
    assert issuer.event_types == ("urn:event:a", "urn:event:b")
    assert issuer.may_send("urn:event:a") and not issuer.may_send("urn:event:c")


def test_without_event_types_every_event_may_be_sent() -> None:
    assert register().may_send("urn:anything")


# -- subjects it is authoritative for -----------------------------------------------------------------


def email(address: str) -> dict[str, str]:
    return {"format": "email", "email": address}


@pytest.mark.parametrize(
    ("subject", "allowed"),
    [
        (email("alice@example.com"), True),
        (email("alice@EXAMPLE.COM"), True),  # domains compare case-insensitively (R-SUB-4)
        (email("alice@evil.example"), False),
        (email("alice@example.com.evil.example"), False),
        ({"format": "phone_number", "phone_number": "+12065550100"}, False),
        ({"format": "iss_sub", "iss": "https://idp.example.com", "sub": "u-1"}, True),
        ({"format": "iss_sub", "iss": "https://other.example", "sub": "u-1"}, False),
        (
            {"format": "complex", "user": email("a@example.com"), "tenant": {"format": "opaque", "id": "t1"}},
            True,
        ),
        (
            {"format": "complex", "user": email("a@example.com"), "device": {"format": "opaque", "id": "d"}},
            False,
        ),
        ({"format": "aliases", "identifiers": [email("a@example.com"), email("b@evil.example")]}, False),
        ({"format": "ip-addresses", "ip-addresses": ["10.1.2.3"]}, True),
        ({"format": "x-proprietary", "id": "a"}, False),
    ],
)
def test_every_identifier_of_the_subject_must_match_a_pattern(subject: dict[str, Any], allowed: bool) -> None:
    issuer = register(
        subject_patterns=[
            "email:*@example.com",
            "iss_sub:https://idp.example.com *",
            "opaque:t*",
            "ip-addresses:10.*",
        ]
    )
    assert issuer.authoritative_for(subject) is allowed


def test_without_patterns_every_subject_is_allowed() -> None:
    assert register().authoritative_for({"format": "x-proprietary", "id": "a"})


def test_subject_values_list_every_simple_identifier() -> None:
    subject = {
        "format": "complex",
        "user": {
            "format": "aliases",
            "identifiers": [email("a@Example.com"), {"format": "opaque", "id": "o"}],
        },
        "session": {"format": "opaque", "id": "s"},
    }
    assert subject_values(subject) == [("email", "a@example.com"), ("opaque", "o"), ("opaque", "s")]


def test_strict_is_off_unless_registered_and_survives_the_store() -> None:
    assert register().strict is False
    strict = register(strict=True)
    assert TrustedIssuer.from_record(strict.to_record()) == strict
    assert strict.public_view()["strict"] is True
    older = {k: v for k, v in register().to_record().items() if k != "strict"}  # stored before issue 15
    assert TrustedIssuer.from_record(older).strict is False
    with pytest.raises(InvalidRequest, match="strict must be true or false"):
        register(strict="true")
