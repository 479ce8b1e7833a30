"""Transmitter discovery from the receiver's side (R-DISC-1..6, AMB-1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from receivers import DiscoveryError, fetch_metadata, parse_metadata, well_known_urls

ISS = "https://tr.example.com/issuer1"


def test_path_insertion_then_appended_then_legacy_names() -> None:  # R-DISC-1, AMB-1
    assert well_known_urls(ISS + "/") == [
        "https://tr.example.com/.well-known/ssf-configuration/issuer1",
        "https://tr.example.com/issuer1/.well-known/ssf-configuration",
        "https://tr.example.com/.well-known/sse-configuration/issuer1",
        "https://tr.example.com/.well-known/risc-configuration/issuer1",
    ]
    assert (
        well_known_urls("https://tr.example.com")[0] == "https://tr.example.com/.well-known/ssf-configuration"
    )


def doc(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"issuer": ISS, "jwks_uri": "https://tr.example.com/jwks"}
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"issuer": "https://other.example.com"}, "R-DISC-4"),
        ({"issuer": None}, "R-DISC-4"),
        ({"jwks_uri": None}, "jwks_uri"),
        ({"jwks_uri": "http://tr.example.com/jwks"}, "jwks_uri"),  # R-DISC-4: https
        ({"configuration_endpoint": "http://tr.example.com/stream"}, "configuration_endpoint"),
        ({"critical_subject_members": "tenant"}, "critical_subject_members"),
    ],
)
def test_metadata_that_fails_validation_is_not_used(
    overrides: dict[str, Any], message: str
) -> None:  # R-DISC-6
    with pytest.raises(DiscoveryError, match=message):
        parse_metadata(doc(**overrides), issuer=ISS)


def test_defaults_and_legacy_fields() -> None:  # R-DISC-4, AMB-10, AMB-11
    metadata = parse_metadata(
        doc(default_subjects="ALL", unknown_claim=1, events_supported=["x"]), issuer=ISS
    )
    assert metadata.spec_version == "1_0-ID1" and metadata.default_subjects == "ALL"
    assert metadata.critical_subject_members == () and metadata.configuration_endpoint is None


def test_plain_http_only_for_loopback_unless_allowed() -> None:
    local = {"issuer": "http://127.0.0.1:8080", "jwks_uri": "http://127.0.0.1:8080/jwks"}
    assert parse_metadata(local, issuer="http://127.0.0.1:8080").issuer == "http://127.0.0.1:8080"
    with pytest.raises(DiscoveryError):
        parse_metadata(local, issuer="http://127.0.0.1:8080", allow_http=False)
    remote = {"issuer": "http://tr.example.com", "jwks_uri": "http://tr.example.com/jwks"}
    with pytest.raises(DiscoveryError):
        parse_metadata(remote, issuer="http://tr.example.com")
    assert parse_metadata(remote, issuer="http://tr.example.com", allow_http=True).jwks_uri.startswith(
        "http:"
    )


async def test_a_legacy_risc_transmitter_is_found() -> None:  # AMB-1
    seen: list[str] = []

    def transmitter(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/.well-known/risc-configuration/issuer1":
            return httpx.Response(200, json=doc())
        return httpx.Response(404)

    async with httpx.AsyncClient(transport=httpx.MockTransport(transmitter)) as http:
        metadata = await fetch_metadata(ISS, http=http)
        assert metadata.issuer == ISS and len(seen) == 4
        with pytest.raises(DiscoveryError, match="no transmitter metadata"):
            await fetch_metadata("https://nothing.example.com", http=http)
