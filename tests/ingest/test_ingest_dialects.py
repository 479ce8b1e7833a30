"""What older and vendor IdPs send is accepted and re-issued as clean SSF 1.0."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.core.dialects import InboundSet
from tests.ingest.helpers import ALICE, hub_and_idp, push, received, receiver_stream, trust
from tests.support.hub import CAEP, RISC, SSF, RunningHub
from tests.support.idp import FakeIdP
from tests.support.servers import serve_app
from tests.support.sets import event_of
from tests.upstreams.support import eventually

LEGACY_SSE = "https://schemas.openid.net/secevent/sse/event-type/"


async def test_a_legacy_set_is_reissued_in_ssf_1_0_form(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub, {"format": "phone_number", "phone_number": "+12065550100"})
        # SSE ID1 / Google RISC style: no sub_id, the subject inside the event with subject_type
        # and the old "phone" format, a millisecond timestamp, a bare-string reason.
        legacy = idp.claims(hub.issuer)
        del legacy["sub_id"]
        legacy["events"] = {
            CAEP + "session-revoked": {
                "subject": {"subject_type": "phone", "phone_number": "+12065550100"},
                "event_timestamp": 1615304991643,
                "reason_admin": "Policy violation",
            }
        }

        r = await push(hub, idp.sign(legacy))

        assert r.status_code == 202, r.text
        (claims,) = await received(hub, stream)  # verify_set checks the SSF 1.0 shape
        uri, event = event_of(claims)
        assert uri == CAEP + "session-revoked"
        assert claims["sub_id"] == {"format": "phone_number", "phone_number": "+12065550100"}  # AMB-2/3/4
        assert event == {"event_timestamp": 1615304991, "reason_admin": {"en": "Policy violation"}}  # AMB-16


async def test_risc_sessions_revoked_goes_out_as_caep_session_revoked(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)

        r = await push(hub, idp.set_for(hub.issuer, event=RISC + "sessions-revoked"))

        assert r.status_code == 202, r.text
        (claims,) = await received(hub, stream)
        assert event_of(claims)[0] == CAEP + "session-revoked"  # R-RISC-9


async def test_alternative_names_of_one_event_become_one_set(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        both = idp.claims(hub.issuer)
        both["events"] = {
            RISC + "sessions-revoked": {"event_timestamp": 1700000000, "initiating_entity": "admin"},
            CAEP + "session-revoked": {"event_timestamp": 1700000001},
        }

        assert (await push(hub, idp.sign(both))).status_code == 202

        (claims,) = await received(hub, stream)  # AMB-17: one unit, one SET
        uri, event = event_of(claims)
        assert uri == CAEP + "session-revoked"
        assert event == {"event_timestamp": 1700000001, "initiating_entity": "admin"}  # current name wins


async def test_distinct_events_of_one_set_are_processed_as_one_unit(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        upstream = idp.claims(hub.issuer, txn="incident-7")
        upstream["events"] = {
            CAEP + "session-revoked": {},
            RISC + "account-disabled": {"reason": "hijacking"},
            "https://vendor.example/event/unknown": {"x": 1},
        }

        assert (await push(hub, idp.sign(upstream))).status_code == 202
        assert (await push(hub, idp.sign(upstream))).status_code == 202  # the unit is de-duplicated whole

        got = await received(hub, stream)
        assert sorted(event_of(c)[0] for c in got) == [CAEP + "session-revoked", RISC + "account-disabled"]
        assert {c["txn"] for c in got} == {"incident-7"}


async def test_upstream_stream_events_are_accepted_but_not_fanned_out(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        seen: list[tuple[str, str]] = []

        async def listener(inbound: InboundSet) -> None:
            seen.append((inbound.iss, inbound.events[0].uri))

        assert hub.app is not None
        hub.app.state.hub.ingest.on_control_event(listener)
        verification = idp.claims(
            hub.issuer, event=LEGACY_SSE + "verification", subject={"format": "opaque", "id": "s1"}
        )
        verification["events"] = {LEGACY_SSE + "verification": {"state": "abc"}}

        assert (await push(hub, idp.sign(verification))).status_code == 202

        assert seen == [(idp.iss, SSF + "verification")]  # AMB-6: the legacy URI is read as SSF 1.0
        assert await received(hub, stream) == []


async def test_alice_subject_formats_old_and_new_reach_the_same_stream(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        old_style = idp.claims(hub.issuer, subject={"subject_type": "email", "email": "alice@EXAMPLE.com"})

        assert (await push(hub, idp.sign(old_style))).status_code == 202

        (claims,) = await received(hub, stream)
        assert claims["sub_id"]["format"] == "email"
        assert "subject_type" not in claims["sub_id"]
        assert claims["sub_id"]["email"].lower() == ALICE["email"]


# -- SSE ID1 (the 2021 draft): in-event subjects, stream events with no subject at all ---------------


class Draft2021Transmitter:
    """A transmitter speaking the 2021 draft (SSE ID1): no ``spec_version``, ``.../sse/event-type/``
    URIs, the subject inside the event, a verification event that names no subject, and
    ``"state": null`` when it verifies on its own. It pushes to the delivery it was given."""

    def __init__(self, idp: FakeIdP, audience: str) -> None:
        self.idp = idp
        self.audience = audience
        self.delivery: dict[str, Any] = {}
        self.verifications: list[dict[str, Any]] = []
        self.pushed: list[int] = []
        self.http = httpx.AsyncClient(timeout=5.0)

    def stream(self) -> dict[str, Any]:
        return {
            "stream_id": "id1-stream",
            "iss": self.idp.iss,
            "aud": self.audience,
            "delivery": self.delivery,
            "events_delivered": [CAEP + "session-revoked"],
        }

    def legacy_set(self, event: str, payload: dict[str, Any], **extra: Any) -> str:
        claims = self.idp.claims(self.audience, **extra)
        del claims["sub_id"]
        claims["events"] = {event: payload}
        return self.idp.sign(claims)

    async def push(self, token: str) -> int:
        headers = {"Content-Type": "application/secevent+jwt"}
        if "authorization_header" in self.delivery:
            headers["Authorization"] = self.delivery["authorization_header"]
        r = await self.http.post(self.delivery["endpoint_url"], content=token, headers=headers)
        self.pushed.append(r.status_code)
        return r.status_code

    def app(self) -> Starlette:
        async def metadata(request: Request) -> JSONResponse:
            base = self.idp.url
            return JSONResponse(
                {
                    "issuer": self.idp.iss,
                    "jwks_uri": self.idp.jwks_uri,
                    "delivery_methods_supported": ["urn:ietf:rfc:8935"],
                    "configuration_endpoint": base + "/sse/stream",
                    "status_endpoint": base + "/sse/status",
                    "verification_endpoint": base + "/sse/verify",
                }
            )

        async def stream(request: Request) -> JSONResponse:
            if request.method == "POST":
                self.delivery = (await request.json())["delivery"]
                return JSONResponse(self.stream(), status_code=201)
            if request.method == "PATCH":
                self.delivery = (await request.json()).get("delivery", self.delivery)
            return JSONResponse(self.stream())

        async def status(request: Request) -> JSONResponse:
            return JSONResponse({"stream_id": "id1-stream", "status": "enabled"})

        async def verify(request: Request) -> Response:
            body = await request.json()
            self.verifications.append(body)
            payload = {"state": body.get("state")}  # ID1: no subject, the stream is implied
            token = self.legacy_set(LEGACY_SSE + "verification", payload)
            asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.push(token)))
            return Response(status_code=204)

        async def jwks(request: Request) -> JSONResponse:
            return JSONResponse(self.idp.jwks())

        return Starlette(
            routes=[
                Route("/.well-known/ssf-configuration", metadata),
                Route("/.well-known/sse-configuration", metadata),
                Route("/sse/stream", stream, methods=["GET", "POST", "PATCH"]),
                Route("/sse/status", status),
                Route("/sse/verify", verify, methods=["POST"]),
                Route("/jwks", jwks),
            ]
        )


async def test_a_draft_2021_sets_in_event_subject_and_subjectless_stream_events_are_read(
    tmp_path: Path,
) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        seen: list[tuple[dict[str, Any], str, dict[str, Any]]] = []

        async def listener(inbound: InboundSet) -> None:
            seen.extend((inbound.subject, e.uri, e.claims) for e in inbound.events)

        assert hub.app is not None
        hub.app.state.hub.ingest.on_control_event(listener)
        id1 = Draft2021Transmitter(idp, hub.issuer)
        revoked = id1.legacy_set(
            CAEP + "session-revoked",
            {
                "subject": {"subject_type": "email", "email": "alice@example.com"},
                "event_timestamp": 1615304991643,
            },
            txn="id1-txn",
        )
        stream_events: list[tuple[str, dict[str, Any]]] = [
            (LEGACY_SSE + "verification", {"state": "s-1"}),
            (LEGACY_SSE + "verification", {"state": None}),  # transmitter-initiated, serialised as null
            (RISC + "verification", {"state": "s-2"}),  # Google's RISC name for it
            (LEGACY_SSE + "stream-updated", {"status": "paused", "reason": "license"}),
        ]

        assert (await push(hub, revoked)).status_code == 202
        for event, payload in stream_events:
            r = await push(hub, id1.legacy_set(event, payload))
            assert r.status_code == 202, (event, r.text)

        (claims,) = await received(hub, stream)  # the stream events were not fanned out
        assert claims["txn"] == "id1-txn"
        assert claims["sub_id"] == ALICE
        assert event_of(claims) == (CAEP + "session-revoked", {"event_timestamp": 1615304991})
        assert seen == [
            ({}, SSF + "verification", {"state": "s-1"}),
            ({}, SSF + "verification", {}),
            ({}, SSF + "verification", {"state": "s-2"}),
            ({}, SSF + "stream-updated", {"status": "paused", "reason": "license"}),
        ]


async def test_a_subjectless_revocation_is_still_refused(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        id1 = Draft2021Transmitter(idp, hub.issuer)

        r = await push(hub, id1.legacy_set(CAEP + "session-revoked", {"event_timestamp": 1615304991}))

        assert r.status_code == 400
        assert r.json() == {"err": "invalid_request", "description": "the SET has no sub_id (R-SET-11)"}


async def test_an_upstream_link_is_verified_by_a_subjectless_draft_2021_verification(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path, upstream_reload_interval=0.2, upstream_check_interval=0.5) as (hub, idp):
        id1 = Draft2021Transmitter(idp, hub.issuer)
        stream = await receiver_stream(hub)
        async with serve_app(id1.app()) as url:
            idp.url = idp.iss = url
            body = {
                "upstream_id": "id1",
                "config_url": url,
                "delivery": "push",
                "token_source": {"type": "bearer", "token": "id1-client-token"},
            }
            r = await hub.client.post(
                "/ssf/admin/upstreams", json=body, headers=hub.auth("secops", "ssf.admin")
            )
            assert r.status_code == 201, r.text

            state = await eventually(lambda: upstream_health(hub, "healthy"))

            assert state["stream_id"] == "id1-stream" and state["verified_at"] is not None
            assert id1.delivery["endpoint_url"] == hub.issuer + "/ssf/ingest"
            assert [v["stream_id"] for v in id1.verifications] == ["id1-stream"]

            async def answered() -> bool:
                return bool(id1.pushed)

            # The hub can record the link healthy before its 202 reaches the transmitter's client.
            await eventually(answered)
            assert id1.pushed == [202]  # the subject-less verification, accepted
            revoked = id1.legacy_set(
                CAEP + "session-revoked", {"subject": ALICE, "reason_admin": "Compromised"}, txn="id1-up-txn"
            )
            assert await id1.push(revoked) == 202
            (claims,) = await received(hub, stream)  # the verification itself was not fanned out
            assert claims["txn"] == "id1-up-txn"
            assert claims["urn:ssf-hub:upstream"]["iss"] == url
            assert event_of(claims)[1]["reason_admin"] == {"en": "Compromised"}
            await id1.http.aclose()


async def upstream_health(hub: RunningHub, wanted: str) -> dict[str, Any] | None:
    r = await hub.client.get("/ssf/admin/upstreams/id1", headers=hub.auth("secops", "ssf.admin"))
    assert r.status_code == 200, r.text
    state: dict[str, Any] = r.json()["state"]
    return state if state["health"] == wanted else None
