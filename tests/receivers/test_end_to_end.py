"""From a signal at the transmitter to the next request refused, over real loopback sockets.

ssf-hub (poll: PollConsumer; push: the hub's RFC 8935 delivery to a PushEndpoint mounted beside
the tool) → ContinuousAccess → the middleware of the served tool. Also push from a minimal
in-test transmitter, which checks the 202 comes only once the revocation is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from receivers import (
    BearerJwtIdentity,
    ContinuousAccess,
    ContinuousAccessMiddleware,
    JwksCache,
    JwtVerifier,
    PollConsumer,
    PushEndpoint,
    Receiver,
    SetVerifier,
    StaticKeys,
    StaticToken,
    StreamClient,
    push_delivery,
)
from receivers.audit import REQUEST_REFUSED
from receivers.events import SESSION_REVOKED
from tests.receivers.support import ALICE, FakeAuthServer, FakeTransmitter, serve_transmitter
from tests.support.hub import run_hub
from tests.support.servers import serve_app


async def tool(request: Request) -> JSONResponse:
    return JSONResponse({"result": "42"})


def tool_server(access: ContinuousAccess, idp: FakeAuthServer) -> ContinuousAccessMiddleware:
    verifier = JwtVerifier(StaticKeys([idp.key]), issuer=idp.issuer, audience="tools")
    tools = Starlette(routes=[Route("/tools/answer", tool, methods=["POST"])])
    return ContinuousAccessMiddleware(tools, access, identity=BearerJwtIdentity(verifier))


async def refused_within(http: httpx.AsyncClient, url: str, token: str, seconds: float) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        r = await http.post(url, headers={"Authorization": f"Bearer {token}"})
        if r.status_code != 200 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.005)


def alice(idp: FakeAuthServer, iat: float) -> str:
    return idp.mint("u-alice", iat=iat, email="alice@example.com")


@pytest.mark.parametrize("mode", ["poll", "push"])
async def test_a_revocation_at_the_hub_refuses_the_next_tool_request(tmp_path: Path, mode: str) -> None:
    idp = FakeAuthServer()
    idp.issuer = "https://idp.example.com"
    access = ContinuousAccess()
    push = PushEndpoint(None, authorization="Bearer from-hub")
    app = Starlette(routes=[Mount("/ssf/push", app=push), Mount("/", app=tool_server(access, idp))])
    async with (
        run_hub(tmp_path / "data", long_poll_seconds=5.0, allow_private_endpoints=True) as hub,
        httpx.AsyncClient(timeout=10) as http,
        serve_app(app) as base,
    ):
        client = await StreamClient.discover(
            hub.issuer, http=http, auth=StaticToken(hub.token("tool-server"))
        )
        delivery = push_delivery(base + "/ssf/push/", "Bearer from-hub") if mode == "push" else None
        stream = await client.create_stream(events_requested=[SESSION_REVOKED], delivery=delivery)
        await client.add_subject(stream.stream_id, ALICE)
        receiver = push.receiver = client.receiver(stream, dispatcher=access.dispatcher)
        stale = alice(idp, time.time() - 60)
        url = base + "/tools/answer"
        async with contextlib.AsyncExitStack() as stack:
            if mode == "poll":
                assert stream.endpoint_url is not None
                consumer = PollConsumer(stream.endpoint_url, receiver, http=http, auth=client.auth)
                await stack.enter_async_context(consumer.running())
            assert (await http.post(url, headers={"Authorization": f"Bearer {stale}"})).status_code == 200
            await asyncio.sleep(0.1)  # the consumer is now in a long poll
            emitted = await hub.emit("session-revoked", ALICE, reason_admin={"en": "laptop stolen"})
            r = await refused_within(http, url, stale, 3.0)
            assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
            fresh = alice(idp, time.time() + 1)  # re-authenticated: issued in a later second
            assert (await http.post(url, headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
        (refusal,) = access.audit.find(REQUEST_REFUSED)
        assert refusal.jti == emitted["sets"][0]["jti"] and refusal.txn == emitted["txn"]
        assert "laptop stolen" in refusal.detail["reason"]


async def test_push_a_revocation_refuses_the_next_tool_request() -> None:
    idp = FakeAuthServer()
    idp.issuer = "https://idp.example.com"
    access = ContinuousAccess()
    async with serve_transmitter(FakeTransmitter(alg="RS256")) as tr, httpx.AsyncClient(timeout=10) as http:
        receiver = Receiver(
            SetVerifier(issuer=tr.issuer, audience=tr.aud),
            JwksCache(tr.issuer + "/jwks.json", http=http),
            dispatcher=access.dispatcher,
        )
        app = Starlette(
            routes=[
                Mount("/ssf/push", app=PushEndpoint(receiver, authorization="Bearer from-hub")),
                Mount("/", app=tool_server(access, idp)),
            ]
        )
        async with serve_app(app) as base:
            stale = alice(idp, time.time() - 60)
            url = base + "/tools/answer"
            assert (await http.post(url, headers={"Authorization": f"Bearer {stale}"})).status_code == 200
            pushed = await tr.push(http, base + "/ssf/push/", tr.set(), authorization="Bearer from-hub")
            assert pushed.status_code == 202
            r = await http.post(url, headers={"Authorization": f"Bearer {stale}"})
            assert r.status_code == 401  # the 202 came after the revocation was in force
