"""ContinuousAccessMiddleware in front of a tool server / LLM gateway (RFC 6750 §3.1, R-TXN-7)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receivers import (
    AnyIdentity,
    BearerJwtIdentity,
    ContinuousAccess,
    ContinuousAccessMiddleware,
    JwtVerifier,
    ReceivedEvent,
    StaticKeys,
    TxnTokenIdentity,
)
from receivers.audit import REQUEST_REFUSED
from receivers.events import RISK_LEVEL_CHANGE, SESSION_REVOKED
from tests.receivers.support import AGENT, AGENT_ID, ALICE, FakeAuthServer, new_key

NOW = time.time()  # set again by every test (the `gate` fixture): tokens minted from it live 300 s


async def tool(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@dataclass
class Gate:
    idp: FakeAuthServer
    access: ContinuousAccess
    client: httpx.AsyncClient

    async def call(self, token: str | None = None, txn_token: str | None = None) -> httpx.Response:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if txn_token:
            headers["Txn-Token"] = txn_token
        return await self.client.post("/tools/search", headers=headers)

    def alice(self, iat: float, **claims: Any) -> str:
        claims.setdefault("email", "alice@example.com")
        claims.setdefault("sid", "s-1")
        return self.idp.mint("u-alice", iat=iat, **claims)


def identity(idp: FakeAuthServer) -> AnyIdentity:
    keys = StaticKeys([idp.key])
    bearer = JwtVerifier(keys, issuer=idp.issuer, audience="tools", typ="at+jwt")
    txn = JwtVerifier(keys, issuer=None, audience="trust.example.com", typ="txntoken+jwt")
    return AnyIdentity(BearerJwtIdentity(bearer), TxnTokenIdentity(txn, issuer=idp.issuer))


@pytest.fixture(scope="module")
def idp() -> FakeAuthServer:
    server = FakeAuthServer()
    server.issuer = "https://idp.example.com"
    return server


@pytest.fixture
async def gate(idp: FakeAuthServer) -> AsyncIterator[Gate]:
    global NOW
    NOW = time.time()  # a test that runs minutes after this module was imported must not mint expired tokens
    access = ContinuousAccess()
    app = ContinuousAccessMiddleware(
        Starlette(routes=[Route("/tools/search", tool, methods=["POST"])]), access, identity=identity(idp)
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tool") as client:
        yield Gate(idp, access, client)


def revoked(subject: dict[str, Any], at: float, **kw: Any) -> ReceivedEvent:
    return ReceivedEvent(
        iss="https://hub",
        jti=kw.pop("jti", "set-1"),
        iat=at,
        aud=("tool",),
        subject=subject,
        events={kw.pop("event", SESSION_REVOKED): kw.pop("payload", {"event_timestamp": int(at)})},
        txn="txn-42",
    )


async def test_a_revoked_caller_is_refused_until_it_reauthenticates(gate: Gate) -> None:
    stale = gate.alice(NOW - 100)
    assert (await gate.call(stale)).status_code == 200
    await gate.access.revoke(revoked(ALICE, NOW - 50))
    r = await gate.call(stale)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert r.json()["error"] == "invalid_token"
    fresh = gate.alice(NOW - 40)  # issued after the revocation
    assert (await gate.call(fresh)).status_code == 200
    refusal = gate.access.audit.find(REQUEST_REFUSED)[0]
    assert (refusal.jti, refusal.txn, refusal.subject) == ("set-1", "txn-42", ALICE)
    assert refusal.detail["status"] == 401 and refusal.detail["path"] == "/tools/search"


async def test_only_the_revoked_session_is_refused(gate: Gate) -> None:  # R-CAEP-4
    session = {"format": "complex", "user": ALICE, "session": {"format": "opaque", "id": "s-1"}}
    await gate.access.revoke(revoked(session, NOW - 50))
    assert (await gate.call(gate.alice(NOW - 100, sid="s-1"))).status_code == 401
    assert (await gate.call(gate.alice(NOW - 100, sid="s-2"))).status_code == 200


async def test_an_agent_workload_event_refuses_its_txn_tokens(gate: Gate) -> None:  # R-TXN-2, R-TXN-7
    txn_token = gate.idp.txn_token("bob@example.com", AGENT_ID, iat=NOW - 100)
    assert (await gate.call(txn_token=txn_token)).status_code == 200
    await gate.access.revoke(
        revoked(AGENT, NOW - 50, event="https://schemas.openid.net/secevent/risc/event-type/account-disabled")
    )
    assert (await gate.call(txn_token=txn_token)).status_code == 401
    # The same user through another workload is fine; so is the user's own bearer token.
    other = gate.idp.txn_token("bob@example.com", "spiffe://example.org/agent/other", iat=NOW - 100)
    assert (await gate.call(txn_token=other)).status_code == 200


async def test_a_policy_denial_is_403(gate: Gate) -> None:  # R-CAEP-11
    token = gate.alice(NOW - 100)
    await gate.access.dispatcher.dispatch(
        revoked(ALICE, NOW, event=RISK_LEVEL_CHANGE, payload={"principal": "USER", "current_level": "HIGH"})
    )
    r = await gate.call(token)
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    assert "risk level is HIGH" in r.json()["error_description"]
    assert "www-authenticate" not in r.headers
    # Re-authenticating does not help against policy; a new signal does.
    assert (await gate.call(gate.alice(NOW + 1))).status_code == 403
    await gate.access.dispatcher.dispatch(
        revoked(
            ALICE,
            NOW,
            jti="set-2",
            event=RISK_LEVEL_CHANGE,
            payload={"principal": "USER", "current_level": "LOW"},
        )
    )
    assert (await gate.call(token)).status_code == 200


@pytest.mark.parametrize("problem", ["signature", "expired", "audience", "typ", "garbage"])
async def test_a_token_that_does_not_verify_is_401_invalid_token(gate: Gate, problem: str) -> None:
    idp = gate.idp
    if problem == "signature":
        other = FakeAuthServer()
        other.issuer = idp.issuer
        other.key = new_key("ES256", kid=idp.key.kid)  # same kid, different key
        token = other.mint("u-alice")
    elif problem == "expired":
        token = idp.mint("u-alice", iat=NOW - 1000, ttl=60)
    elif problem == "audience":
        token = idp.mint("u-alice", aud="another-api")
    elif problem == "typ":
        token = idp.mint("u-alice", typ="txntoken+jwt")
    else:
        token = "not.a.jwt"
    r = await gate.call(token)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_requests_without_credentials_are_refused_unless_the_app_opts_out(
    gate: Gate, idp: FakeAuthServer
) -> None:
    r = await gate.call()  # require_caller=True is the default: fail closed
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "retry-after" not in r.headers  # only a revocation's 401 says when to come back
    tools = Starlette(routes=[Route("/", tool, methods=["POST"])])
    app = ContinuousAccessMiddleware(tools, gate.access, identity=identity(idp), require_caller=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/")).status_code == 200


async def test_a_revoked_websocket_handshake_is_closed(gate: Gate, idp: FakeAuthServer) -> None:
    await gate.access.revoke(revoked(ALICE, NOW - 50))
    sent: list[MutableMapping[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not see a revoked caller")

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    middleware = ContinuousAccessMiddleware(app, gate.access, identity=identity(idp))
    token = gate.alice(NOW - 100)
    scope = {"type": "websocket", "path": "/ws", "headers": [(b"authorization", f"Bearer {token}".encode())]}
    await middleware(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": sent[0]["reason"]}]
