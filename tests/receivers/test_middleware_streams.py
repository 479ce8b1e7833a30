"""Long-lived responses behind ``ContinuousAccessMiddleware`` (issue 17, problem 9), and the
verified caller handed to the app; refused SETs counted for the app (no audit otherwise).

A server-sent-event stream served by uvicorn on loopback is cut when its caller's session is
revoked mid-stream (``cut_revoked_streams=True``); without the option it runs to its end. A
WebSocket is closed with 1008.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from receivers import (
    BearerJwtIdentity,
    ContinuousAccess,
    ContinuousAccessMiddleware,
    JwtVerifier,
    ReceivedEvent,
    Receiver,
    SetError,
    SetVerifier,
    StaticKeys,
)
from receivers.audit import REQUEST_REFUSED
from receivers.caller import Caller
from receivers.events import SESSION_REVOKED
from tests.receivers.support import ALICE, FakeAuthServer, FakeTransmitter
from tests.support.servers import serve_app

CHUNKS = 40  # 40 x 50 ms: a two-second answer


async def completion(request: Request) -> StreamingResponse:
    async def tokens() -> AsyncIterator[bytes]:
        for n in range(CHUNKS):
            yield f"data: token {n}\n\n".encode()
            await asyncio.sleep(0.05)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(tokens(), media_type="text/event-stream")


async def whoami(request: Request) -> JSONResponse:
    caller: Caller = request.state.caller
    return JSONResponse({"fingerprints": [c.fingerprint for c in caller.credentials]})


@pytest.fixture
def idp() -> FakeAuthServer:
    server = FakeAuthServer()
    server.issuer = "https://idp.example.com"
    return server


def gateway(access: ContinuousAccess, idp: FakeAuthServer, **options: Any) -> ContinuousAccessMiddleware:
    verifier = JwtVerifier(StaticKeys([idp.key]), issuer=idp.issuer, audience="tools", typ="at+jwt")
    routes = [Route("/v1/chat", completion, methods=["POST"]), Route("/whoami", whoami)]
    return ContinuousAccessMiddleware(
        Starlette(routes=routes), access, identity=BearerJwtIdentity(verifier), **options
    )


def revocation(at: float) -> ReceivedEvent:
    return ReceivedEvent(
        iss="https://hub",
        jti="set-cut",
        iat=at,
        aud=("gw",),
        subject=ALICE,
        events={SESSION_REVOKED: {"event_timestamp": int(at)}},
    )


async def stream_chunks(url: str, token: str, on_first: Any) -> list[str]:
    chunks: list[str] = []
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream("POST", url + "/v1/chat", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                chunks.append(line)
                if len(chunks) == 1:
                    await on_first()
    return chunks


@pytest.mark.parametrize("cut", [True, False])
async def test_a_streaming_answer_is_cut_when_its_caller_is_revoked(idp: FakeAuthServer, cut: bool) -> None:
    access = ContinuousAccess()
    token = idp.mint("u-alice", iat=time.time() - 100, email="alice@example.com")
    revoked_at: list[float] = []

    async def revoke() -> None:
        await access.revoke(revocation(time.time() - 50))
        revoked_at.append(time.monotonic())

    async with serve_app(gateway(access, idp, cut_revoked_streams=cut)) as url:
        chunks = await stream_chunks(url, token, revoke)
        ended = time.monotonic()
    if not cut:
        assert len(chunks) == CHUNKS + 1 and chunks[-1] == "data: [DONE]"
        return
    assert "data: [DONE]" not in chunks and len(chunks) < CHUNKS / 2
    assert ended - revoked_at[0] < 0.5  # woken by the change, not the 1 s periodic re-check
    (refusal,) = access.audit.find(REQUEST_REFUSED)
    assert refusal.jti == "set-cut" and refusal.detail["cut"] is True


async def test_a_websocket_is_closed_when_its_caller_is_revoked(idp: FakeAuthServer) -> None:
    access = ContinuousAccess()
    token = idp.mint("u-alice", iat=time.time() - 100, email="alice@example.com")
    sent: list[MutableMapping[str, Any]] = []
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "websocket.connect"})

    async def chat(scope: Any, receive: Any, send: Any) -> None:
        assert isinstance(scope["state"]["caller"], Caller)
        await receive()
        await send({"type": "websocket.accept"})
        while True:  # an idle session: only the revocation ends it
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    middleware = ContinuousAccessMiddleware(
        chat, access, identity=gateway(access, idp).identity, cut_revoked_streams=True
    )
    scope = {"type": "websocket", "path": "/ws", "headers": [(b"authorization", f"Bearer {token}".encode())]}
    session = asyncio.create_task(middleware(scope, inbox.get, send))
    await asyncio.sleep(0.05)
    assert sent == [{"type": "websocket.accept"}]
    await access.revoke(revocation(time.time() - 50))
    await asyncio.wait_for(session, 1.0)
    assert sent[-1]["type"] == "websocket.close" and sent[-1]["code"] == 1008


async def test_the_app_gets_the_verified_caller(idp: FakeAuthServer) -> None:
    access = ContinuousAccess()
    token = idp.mint("u-alice", email="alice@example.com")
    transport = httpx.ASGITransport(app=gateway(access, idp))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        r = await http.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["fingerprints"][0].startswith("sha256:")


async def test_refused_sets_are_counted_and_reported_to_the_app() -> None:
    transmitter = FakeTransmitter()
    transmitter.issuer = "https://tr.example.com"
    receiver = Receiver(
        SetVerifier(issuer=transmitter.issuer, audience=transmitter.aud),
        StaticKeys(transmitter.keys),
        stream_id=transmitter.stream_id,
    )
    heard: list[SetError] = []
    receiver.on_refusal(heard.append)
    with pytest.raises(SetError):
        await receiver.process(transmitter.set(aud="someone-else"))
    with pytest.raises(SetError):
        await receiver.process("not-a-set")
    await receiver.process(transmitter.set())
    assert receiver.refused == 2 and receiver.processed == 1
    assert set(receiver.refusals) == {heard[0].err, heard[1].err} and heard[0].err == "invalid_audience"
