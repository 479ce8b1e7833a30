"""Every way /ssf/ingest refuses a SET, each with its RFC 8935 ``err`` (R-PUSH-5, R-PUSH-6)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.ingest.helpers import hub_and_idp, push, received, receiver_stream, trust
from tests.support.hub import RunningHub
from tests.support.idp import FakeIdP, new_key, run_idp, sign


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[RunningHub, FakeIdP]]:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        yield hub, idp


def refusal(r: Any, err: str, status: int = 400) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["err"] == err, body
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-language"] == "en"  # R-PUSH-5
    description: str = body["description"]
    return description


# -- the sender is authenticated before any crypto (R-PUSH-10) ----------------------------------------


async def test_no_token_is_401_and_no_key_is_fetched(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair

    r = await push(hub, idp.set_for(hub.issuer), token=None)

    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert idp.jwks_fetches == 0


async def test_a_token_without_ssf_ingest_is_403(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair

    for scope in ("ssf.manage", "ssf.admin", "ssf.read"):
        r = await push(hub, idp.set_for(hub.issuer), token=hub.token("someone", scope))
        assert r.status_code == 403, scope
    assert idp.jwks_fetches == 0


# -- the body ---------------------------------------------------------------------------------------


async def test_the_body_must_be_a_secevent_jwt(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair
    token = idp.set_for(hub.issuer)

    for content_type in ("application/json", "text/plain", None):
        description = refusal(await push(hub, token, content_type=content_type), "invalid_request")
        assert "application/secevent+jwt" in description
    parameterised = await push(hub, token, content_type="application/secevent+jwt; charset=utf-8")
    assert parameterised.status_code == 202


async def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path, max_body_bytes=4096) as (hub, idp):
        await trust(hub, idp)

        r = await push(hub, "x" * 5000)

        assert r.status_code == 413
        assert r.json()["err"] == "payload_too_large"


@pytest.mark.parametrize(
    "body",
    [b"", b"not a jwt", b"a.b", b"a.b.c.d.e", b"e30.e30.", b"eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln"],
    ids=["empty", "text", "two-parts", "jwe-shaped", "empty-json", "payload-not-json"],
)
async def test_malformed_bodies_are_invalid_request(pair: tuple[RunningHub, FakeIdP], body: bytes) -> None:
    hub, _ = pair
    refusal(await push(hub, body), "invalid_request")


# -- R-SEC-1: typ, algorithm, signature, issuer, audience ---------------------------------------------


async def test_an_unknown_issuer_is_invalid_issuer_before_any_key_fetch(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):  # the IdP is never registered
        refusal(await push(hub, idp.set_for(hub.issuer)), "invalid_issuer")
        assert idp.jwks_fetches == 0


async def test_a_bad_signature_is_invalid_key(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair
    forger = new_key("RS256", kid=idp.key.kid)  # right kid, wrong key

    refusal(await push(hub, sign(idp.claims(hub.issuer), forger, alg="RS256")), "invalid_key")
    header, _, signature = idp.set_for(hub.issuer).split(".")
    other_payload = idp.set_for(hub.issuer).split(".")[1]  # a valid payload, not the one signed
    refusal(await push(hub, f"{header}.{other_payload}.{signature}"), "invalid_key")


async def test_a_kid_the_idp_does_not_publish_is_invalid_key(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair

    r = await push(hub, idp.sign(idp.claims(hub.issuer), header={"kid": "never-published"}))

    refusal(r, "invalid_key")


@pytest.mark.parametrize("alg", ["none", "HS256", "ES256"])
async def test_an_algorithm_off_the_issuers_list_is_invalid_key(
    pair: tuple[RunningHub, FakeIdP], alg: str
) -> None:
    hub, idp = pair  # registered with the default list; this IdP signs RS256
    claims = idp.claims(hub.issuer)
    if alg == "ES256":
        token = sign(claims, new_key("ES256"), alg="ES256")
        await trust(hub, idp, algorithms=["RS256"])
    else:
        token = idp.sign(claims, header={"alg": alg}).rsplit(".", 1)[0] + "."  # no usable signature

    refusal(await push(hub, token), "invalid_key")


async def test_hmac_signed_with_the_public_key_is_refused(pair: tuple[RunningHub, FakeIdP]) -> None:
    import base64
    import hashlib
    import hmac
    import json

    hub, idp = pair
    public_pem = json.dumps(idp.jwks()).encode()  # the classic confusion: HMAC keyed by public data
    head = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "secevent+jwt"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(idp.claims(hub.issuer)).encode()).rstrip(b"=")
    mac = hmac.new(public_pem, head + b"." + body, hashlib.sha256).digest()
    token = head + b"." + body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")

    refusal(await push(hub, token), "invalid_key")


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt"])
async def test_typ_must_be_secevent_jwt(pair: tuple[RunningHub, FakeIdP], typ: str | None) -> None:
    hub, idp = pair  # R-SET-8
    refusal(await push(hub, idp.sign(idp.claims(hub.issuer), header={"typ": typ})), "invalid_request")


async def test_an_unknown_critical_header_is_refused(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair  # R-SEC-2
    token = idp.sign(idp.claims(hub.issuer), header={"crit": ["urn:example:x"], "urn:example:x": 1})
    refusal(await push(hub, token), "invalid_request")


async def test_jku_and_x5u_are_never_followed(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair  # R-SEC-2: an attacker's key published at a URL the token names
    async with run_idp("RS256") as attacker:
        claims = idp.claims(hub.issuer)
        header = {"kid": attacker.key.kid, "jku": attacker.jwks_uri, "x5u": attacker.jwks_uri}

        r = await push(hub, sign(claims, attacker.key, alg="RS256", header=header))

        refusal(r, "invalid_key")
        assert attacker.jwks_fetches == 0


async def test_a_set_for_another_audience_is_invalid_audience(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair
    for aud in ("https://someone-else.example", ["https://a.example", "https://b.example"]):
        refusal(await push(hub, idp.sign({**idp.claims(hub.issuer), "aud": aud})), "invalid_audience")
    without = idp.claims(hub.issuer)
    del without["aud"]
    refusal(await push(hub, idp.sign(without)), "invalid_audience")
    listed = await push(hub, idp.sign({**idp.claims(hub.issuer), "aud": ["https://x.example", hub.issuer]}))
    assert listed.status_code == 202


async def test_claims_ssf_forbids_or_requires(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair
    now = int(time.time())
    cases: list[dict[str, Any]] = [
        {"iat": now + 3600},  # R-SEC-3: far in the future
        {"exp": now + 60},  # R-SET-10
        {"sub": "alice"},  # R-SET-9
        {"jti": ""},
        {"events": {}},  # R-SET-6
        {"events": {"https://schemas.openid.net/secevent/caep/event-type/session-revoked": "x"}},
        {"sub_id": {"format": "email"}},  # R-SUB-1: a member missing
        {"events": {"https://example.com/unknown-event": {}}},  # no type the hub knows (AMB-13)
        {
            "events": {
                "https://schemas.openid.net/secevent/caep/event-type/credential-change": {
                    "credential_type": "x"
                }
            }
        },  # change_type required (R-CAEP-6)
    ]
    for changes in cases:
        claims = {**idp.claims(hub.issuer), **changes}
        refusal(await push(hub, idp.sign(claims)), "invalid_request")
    no_subject = idp.claims(hub.issuer)
    del no_subject["sub_id"]
    refusal(await push(hub, idp.sign(no_subject)), "invalid_request")


async def test_a_set_older_than_the_dedup_window_is_refused(tmp_path: Path) -> None:
    # R-SEC-3: (iss, jti) is remembered for ingest_dedup_days; an older SET could be replayed
    # after its receipt was forgotten and be fanned out again.
    async with hub_and_idp(tmp_path, ingest_dedup_days=1) as (hub, idp):
        await trust(hub, idp)
        old = idp.claims(hub.issuer, iat=int(time.time()) - 86400 - 60)
        description = refusal(await push(hub, idp.sign(old)), "invalid_request")
        assert description == "SET is older than the replay window"
        recent = idp.claims(hub.issuer, iat=int(time.time()) - 86400 + 60)
        assert (await push(hub, idp.sign(recent))).status_code == 202


async def test_a_little_clock_skew_is_tolerated(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair
    r = await push(hub, idp.sign(idp.claims(hub.issuer, iat=int(time.time()) + 20)))
    assert r.status_code == 202, r.text


# -- per-issuer limits: access_denied ----------------------------------------------------------------


async def test_an_event_type_the_issuer_may_not_send_is_access_denied(
    pair: tuple[RunningHub, FakeIdP],
) -> None:
    hub, idp = pair
    await trust(hub, idp, event_types=["credential-change"])

    description = refusal(await push(hub, idp.set_for(hub.issuer)), "access_denied")

    assert "session-revoked" in description
    allowed = idp.claims(
        hub.issuer,
        event="https://schemas.openid.net/secevent/caep/event-type/credential-change",
    )
    allowed["events"] = {
        next(iter(allowed["events"])): {"credential_type": "password", "change_type": "update"}
    }
    assert (await push(hub, idp.sign(allowed))).status_code == 202


async def test_a_subject_the_issuer_is_not_authoritative_for_is_access_denied(
    pair: tuple[RunningHub, FakeIdP],
) -> None:
    hub, idp = pair
    await trust(hub, idp, subject_patterns=["email:*@example.com"])
    stream = await receiver_stream(hub, {"format": "opaque", "id": "victim-device"})

    outsider = {"format": "email", "email": "mallory@elsewhere.example"}
    refusal(await push(hub, idp.set_for(hub.issuer, subject=outsider)), "access_denied")
    # Naming one subject it owns does not let it reach another's device.
    mixed = {
        "format": "complex",
        "user": {"format": "email", "email": "alice@example.com"},
        "device": {"format": "opaque", "id": "victim-device"},
    }
    refusal(await push(hub, idp.set_for(hub.issuer, subject=mixed)), "access_denied")
    assert await received(hub, stream) == []
    assert (await push(hub, idp.set_for(hub.issuer))).status_code == 202


async def test_a_refused_set_leaves_nothing_behind(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair
    stream = await receiver_stream(hub)
    claims = idp.claims(hub.issuer)

    refusal(await push(hub, idp.sign({**claims, "aud": "https://elsewhere.example"})), "invalid_audience")
    # The refusal recorded no receipt: the corrected SET with the same jti goes through.
    assert (await push(hub, idp.sign(claims))).status_code == 202
    assert len(await received(hub, stream)) == 1


async def test_the_issuers_limits_do_not_block_its_stream_events(pair: tuple[RunningHub, FakeIdP]) -> None:
    hub, idp = pair  # verification needs no events_requested entry and names the stream (R-SSFEV-3)
    await trust(hub, idp, event_types=["session-revoked"], subject_patterns=["email:*@example.com"])
    verification = "https://schemas.openid.net/secevent/ssf/event-type/verification"
    claims = idp.claims(hub.issuer, event=verification, subject={"format": "opaque", "id": "upstream-stream"})
    claims["events"] = {verification: {"state": "s-1"}}

    assert (await push(hub, idp.sign(claims))).status_code == 202
