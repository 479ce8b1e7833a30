"""Input an adversary sends gets a 4xx with the JSON error shape, never a 500 (issue 16).

Each case here once earned a 500 with a traceback in the log, or was silently accepted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from hub.core.inputs import MAX_JSON_DEPTH, decode_json, nesting_exceeds, parse_url
from hub.errors import InvalidRequest
from hub.web.guards import query_problem
from tests.ingest.helpers import hub_and_idp, push, trust
from tests.support.hub import RunningHub, run_hub

ALICE = {"format": "email", "email": "alice@example.com"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_token(header: bytes, payload: bytes) -> str:
    return f"{b64(header)}.{b64(payload)}.{b64(b'not-a-signature')}"


NESTED = b"[" * 3000 + b"]" * 3000


def assert_json_4xx(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"err", "description"}, body
    assert "Traceback" not in r.text


# --- decoding, in the pure core ------------------------------------------------------------------


def test_decode_json_bounds_nesting_below_the_parsers_recursion_limit() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(InvalidRequest, match=f"nests deeper than {MAX_JSON_DEPTH} levels"):
        decode_json(deep)
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        decode_json(NESTED)  # deeper than Python's parser can go: RecursionError inside
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert nesting_exceeds(decode_json(ok), MAX_JSON_DEPTH) is False


def test_parse_url_turns_every_parse_error_into_invalid_request() -> None:
    for bad in ("http://[", "https://example.com:99999/", "https://example.com:port/"):
        with pytest.raises(InvalidRequest, match="is not a valid URL"):
            parse_url(bad, what="jwks_uri")
    assert parse_url("https://idp.example.com/jwks", what="jwks_uri").hostname == "idp.example.com"


def test_a_repeated_query_parameter_is_a_problem_whatever_its_name() -> None:
    assert query_problem(b"stream_id=a&stream_id=b") == "query parameter 'stream_id' is given more than once"
    assert query_problem(b"a=1&a=") is not None
    assert query_problem(b"stream_id=a&txn=b") is None
    assert query_problem(b"&".join(b"p%d=1" % i for i in range(100))) is not None


# --- on a running hub ------------------------------------------------------------------------------


async def test_nested_json_in_an_unauthenticated_token_is_401_not_500(hub: RunningHub) -> None:
    header = json.dumps({"alg": "ES256", "typ": "at+jwt"}).encode()
    nested_claim = b'{"iss": "urn:ssf-hub:local", "sub": ' + NESTED[:1600] + b"}"
    tokens = [
        forged_token(header, NESTED[:4000]),  # the whole payload
        forged_token(header, nested_claim),  # one claim
        forged_token(b'{"alg": "ES256", "x": ' + NESTED[:4000] + b"}", b"{}"),  # the JOSE header
    ]
    started = time.monotonic()
    results = await asyncio.gather(
        *(hub.client.get("/ssf/stream", headers={"Authorization": f"Bearer {t}"}) for t in tokens * 30)
    )
    for r in results:
        assert_json_4xx(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert time.monotonic() - started < 20
    assert (await hub.client.get("/healthz")).status_code == 200


async def test_an_access_token_over_8_kib_is_refused_before_parsing(hub: RunningHub) -> None:
    padded = hub.token() + "A" * (40 * 1024)
    r = await hub.client.get("/ssf/stream", headers={"Authorization": f"Bearer {padded}"})
    assert_json_4xx(r, 401)
    assert r.json()["description"] == "token longer than 8192 bytes"
    assert (await hub.client.get("/ssf/stream", headers=hub.auth())).status_code == 200


async def test_a_configured_token_size_cap_applies(tmp_path: Path) -> None:
    async with run_hub(tmp_path / "data", max_access_token_bytes=1024) as small:
        r = await small.client.get("/ssf/stream", headers={"Authorization": "Bearer " + "a" * 1025})
        assert r.json()["description"] == "token longer than 1024 bytes"


@pytest.mark.parametrize("bad_url", ["http://[", "https://idp.example.com:99999/jwks"])
async def test_an_unparsable_jwks_uri_is_400(hub: RunningHub, bad_url: str) -> None:
    r = await hub.client.post(
        "/ssf/admin/issuers",
        json={"iss": "https://idp.example.com", "jwks_uri": bad_url},
        headers=hub.auth(scope="ssf.admin"),
    )
    assert_json_4xx(r, 400)
    assert r.json()["description"] == "jwks_uri is not a valid URL"


@pytest.mark.parametrize("bad_url", ["http://[", "https://tx.example.com:port/"])
async def test_an_unparsable_upstream_config_url_is_400(hub: RunningHub, bad_url: str) -> None:
    r = await hub.client.post(
        "/ssf/admin/upstreams", json={"config_url": bad_url}, headers=hub.auth(scope="ssf.admin")
    )
    assert_json_4xx(r, 400)
    assert r.json()["description"] == "config_url is not a valid URL"


async def test_an_unparsable_push_endpoint_is_400(hub: RunningHub) -> None:
    body = {"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "https://[::1"}}
    r = await hub.client.post("/ssf/stream", json=body, headers=hub.auth())
    assert_json_4xx(r, 400)


async def test_stream_id_given_twice_is_400_on_every_route(hub: RunningHub) -> None:
    s = await hub.create_stream()
    sid = s["stream_id"]
    twice = f"stream_id={sid}&stream_id=someone-elses"
    for method, path in (("GET", "/ssf/stream"), ("DELETE", "/ssf/stream"), ("GET", "/ssf/status")):
        r = await hub.client.request(method, f"{path}?{twice}", headers=hub.auth())
        assert_json_4xx(r, 400)
        assert "given more than once" in r.json()["description"]
    # Unauthenticated requests are refused the same way, before any route runs.
    assert (await hub.client.get(f"/ssf/stream?{twice}")).status_code == 400
    assert (await hub.client.get(f"/ssf/stream?stream_id={sid}", headers=hub.auth())).status_code == 200


async def test_a_nested_jose_header_from_a_trusted_issuer_is_400_at_ingest(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        header = b'{"alg": "RS256", "typ": "secevent+jwt", "x": ' + NESTED[:4000] + b"}"
        payload = json.dumps({"iss": idp.iss, "jti": "j1", "iat": int(time.time())}).encode()
        r = await push(hub, forged_token(header, payload))
        assert_json_4xx(r, 400)
        assert r.json()["err"] == "invalid_request"


async def test_an_accepted_set_survives_a_barrage_of_hostile_requests(hub: RunningHub) -> None:
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    (item,) = (await hub.emit("session-revoked", ALICE))["sets"]
    header = b'{"alg": "ES256"}'
    for token in (forged_token(header, NESTED[:4000]), "x" * 9000):
        r = await hub.client.post(
            s["delivery"]["endpoint_url"], json={}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401
    assert list((await hub.poll(s))["sets"]) == [item["jti"]]
