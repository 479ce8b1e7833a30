"""Fuzzing /ssf/ingest: malformed JWTs, JSON and headers get a 4xx, never a 5xx, and nothing
the hub accepted before is lost."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingest.helpers import SET_MEDIA_TYPE, hub_and_idp, push, received, receiver_stream, trust
from tests.support.hub import CAEP, RISC
from tests.support.idp import FakeIdP

EXAMPLES = 120
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
event_uris = st.sampled_from(
    [
        CAEP + "session-revoked",
        CAEP + "credential-change",
        CAEP + "assurance-level-change",
        RISC + "sessions-revoked",
        RISC + "identifier-changed",
        "https://schemas.openid.net/secevent/sse/event-type/verification",
        "https://schemas.openid.net/secevent/ssf/event-type/stream-updated",
        "https://vendor.example/unknown",
    ]
) | st.text(max_size=30)
subjects = json_values | st.fixed_dictionaries(
    {"format": st.sampled_from(["email", "phone", "complex", "aliases", "opaque", "iss_sub"])},
    optional={
        "email": st.text(max_size=20),
        "subject_type": st.text(max_size=10),
        "phone_number": st.text(max_size=15),
        "id": json_values,
        "user": json_values,
        "identifiers": json_values,
    },
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


event_claim_names = st.sampled_from(
    [
        "event_timestamp",
        "reason_admin",
        "subject",
        "initiating_entity",
        "credential_type",
        "change_type",
        "state",
    ]
)
event_objects = st.dictionaries(event_claim_names, json_values | st.integers(0, 2 * 10**12), max_size=3)


def claims_strategy(idp: FakeIdP, aud: str) -> st.SearchStrategy[dict[str, Any]]:
    """Well-signed SETs whose claims range from right to nonsense: a valid SET with some claims
    replaced by generated values and some dropped."""
    now = int(time.time())
    mutations = st.fixed_dictionaries(
        {},
        optional={
            "jti": st.text(max_size=40) | json_values,
            "iat": st.sampled_from([now, now + 10**6, -1, 1.5]) | json_values,
            "aud": st.sampled_from([aud, [aud], [aud, "x"]]) | json_values,
            "txn": st.text(max_size=300) | json_values,
            "toe": st.integers() | json_values,
            "sub_id": subjects,
            "events": st.dictionaries(event_uris, event_objects | json_values, max_size=3) | json_values,
            "exp": st.integers(),
        },
    )
    dropped = st.sets(st.sampled_from(["jti", "iat", "aud", "sub_id", "events"]), max_size=2)

    def build(parts: tuple[Any, dict[str, Any], set[str]]) -> dict[str, Any]:
        jti, changes, drop = parts
        claims = {**idp.claims(aud, jti=str(jti)), **changes}
        return {k: v for k, v in claims.items() if k not in drop}

    return st.tuples(st.uuids(), mutations, dropped).map(build)


@pytest.mark.slow
async def test_fuzzed_requests_get_4xx_and_lose_nothing(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path, alg="ES256") as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        assert (await push(hub, idp.set_for(hub.issuer, txn="before-fuzz"))).status_code == 202
        url = hub.base_url + "/ssf/ingest"
        auth = {"Authorization": f"Bearer {hub.token('fuzzer', 'ssf.ingest')}"}
        statuses: dict[int, int] = {}

        def send(client: httpx.Client, body: bytes | str, headers: dict[str, str]) -> None:
            r = client.post(url, content=body, headers=headers)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (r.status_code, r.text, body, headers)
            if r.status_code != 202:
                assert set(r.json()) == {"err", "description"}, r.text

        def fuzz() -> None:
            with httpx.Client(timeout=10) as client:
                headers = {**auth, "Content-Type": SET_MEDIA_TYPE}

                @FUZZ
                @given(st.binary(max_size=300) | st.text(max_size=300))
                def raw_bodies(body: bytes | str) -> None:
                    send(client, body, headers)

                @FUZZ
                @given(json_values, json_values, st.binary(max_size=40))
                def unsigned_jwts(header: Any, payload: Any, signature: bytes) -> None:
                    if isinstance(payload, dict):
                        payload = {**payload, "iss": idp.iss}  # get past the issuer look-up
                    parts = [
                        b64(json.dumps(header).encode()),
                        b64(json.dumps(payload).encode()),
                        b64(signature),
                    ]
                    send(client, ".".join(parts), headers)

                @FUZZ
                @given(
                    claims_strategy(idp, hub.issuer),
                    st.dictionaries(
                        st.sampled_from(["typ", "crit", "kid", "jku", "b64"]), json_values, max_size=2
                    ),
                )
                def signed_sets(claims: dict[str, Any], header: dict[str, Any]) -> None:
                    header = {k: v for k, v in header.items() if v is not None}
                    send(client, idp.sign(claims, header=header), headers)

                # h11 will not send surrounding whitespace in a header value (RFC 9110 §5.5).
                printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(
                    str.strip
                )

                @FUZZ
                @given(st.just(auth["Authorization"]) | printable, st.just(SET_MEDIA_TYPE) | printable)
                def odd_headers(authorization: str, content_type: str) -> None:
                    body = idp.set_for(hub.issuer)
                    send(client, body, {"Authorization": authorization, "Content-Type": content_type})

                raw_bodies()
                unsigned_jwts()
                signed_sets()
                odd_headers()

        await asyncio.to_thread(fuzz)

        assert sum(statuses.values()) >= 4 * EXAMPLES * 0.9
        assert {202, 400, 401} <= set(statuses)  # the generated requests reach every outcome
        assert (await hub.client.get("/healthz")).status_code == 200
        # The SET accepted before the fuzzing is still queued, and the hub still takes new ones.
        before = [c for c in await received(hub, stream) if c["txn"] == "before-fuzz"]
        assert len(before) == 1
        assert (await push(hub, idp.set_for(hub.issuer))).status_code == 202
