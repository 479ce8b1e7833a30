"""The agent side: CachedTokenAuth re-acquires after an invalidation; OAuth client credentials
(client secret and private_key_jwt, RFC 7523) refresh on expiry and on 401 invalid_token."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receivers import (
    BearerAuth,
    BearerJwtIdentity,
    CachedTokenAuth,
    ClientCredentials,
    ContinuousAccess,
    ContinuousAccessMiddleware,
    IssuedToken,
    JwtVerifier,
    ReceivedEvent,
    StaticKeys,
    StaticToken,
    TokenCache,
    TokenError,
    TokenKind,
)
from receivers.audit import TOKEN_DROPPED
from receivers.events import SESSION_REVOKED
from tests.receivers.support import AGENT_ID, ALICE, FakeAuthServer, new_key, serve_auth_server


def revocation(at: float) -> ReceivedEvent:
    return ReceivedEvent(
        iss="https://hub",
        jti="set-9",
        iat=at,
        aud=("agent",),
        subject=ALICE,
        events={SESSION_REVOKED: {"event_timestamp": at}},
        txn="txn-9",
    )


@pytest.fixture(scope="module")
def idp() -> FakeAuthServer:
    server = FakeAuthServer()
    server.issuer = "https://idp.example.com"
    return server


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {"authorization": request.headers.get("authorization"), "txn": request.headers.get("txn-token")}
    )


def tool_app(idp: FakeAuthServer, access: ContinuousAccess) -> ContinuousAccessMiddleware:
    verifier = JwtVerifier(StaticKeys([idp.key]), issuer=idp.issuer, audience="tools")
    return ContinuousAccessMiddleware(
        Starlette(routes=[Route("/", echo)]), access, identity=BearerJwtIdentity(verifier)
    )


async def test_the_agent_reacquires_after_a_signal_drops_its_token(idp: FakeAuthServer) -> None:
    agent_access = ContinuousAccess()  # the agent's own receiver state
    cache = TokenCache(name="researcher")
    agent_access.add_token_cache(cache)
    tool_access = ContinuousAccess()  # the tool server's
    issued_at = [time.time() - 100]

    async def exchange() -> str:  # token exchange at the IdP: Alice's token with the agent as actor
        return idp.mint("u-alice", iat=issued_at[0], email="alice@example.com", act={"sub": AGENT_ID})

    auth = CachedTokenAuth(cache, exchange, key=("alice", "tools"))
    transport = httpx.ASGITransport(app=tool_app(idp, tool_access))
    async with httpx.AsyncClient(transport=transport, base_url="http://tool", auth=auth) as client:
        first = (await client.get("/")).json()["authorization"]
        assert (await client.get("/")).json()["authorization"] == first and auth.acquisitions == 1

        # Alice's session is revoked: both sides hear it.
        event = revocation(time.time() - 50)
        await agent_access.revoke(event)
        await tool_access.revoke(event)
        assert len(cache) == 0
        assert agent_access.audit.find(TOKEN_DROPPED)[0].detail["cache"] == "researcher"

        issued_at[0] = time.time()  # the IdP now issues a token newer than the revocation
        r = await client.get("/")
        assert r.status_code == 200 and r.json()["authorization"] != first
        assert auth.acquisitions == 2


async def test_a_401_invalid_token_makes_the_agent_reacquire_once(idp: FakeAuthServer) -> None:
    tool_access = ContinuousAccess()
    await tool_access.revoke(revocation(time.time() - 50))  # the tool knows; the agent's cache does not
    issued = [time.time() - 100, time.time()]

    async def exchange() -> IssuedToken:
        iat = issued.pop(0)
        return IssuedToken(idp.mint("u-alice", iat=iat, email="alice@example.com"), expires_at=iat + 300)

    cache = TokenCache()
    auth = CachedTokenAuth(cache, exchange, key="alice")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tool_app(idp, tool_access)), base_url="http://tool", auth=auth
    ) as client:
        assert (await client.get("/")).status_code == 200
        assert auth.acquisitions == 2


async def test_txn_tokens_travel_in_the_txn_token_header(idp: FakeAuthServer) -> None:  # R-TXN-7
    async def tts() -> str:
        return idp.txn_token("alice@example.com", AGENT_ID)

    auth = CachedTokenAuth(TokenCache(), tts, key="txn", kind=TokenKind.TXN, issuer="https://tts")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=Starlette(routes=[Route("/", echo)])), auth=auth
    ) as c:
        body = (await c.get("http://tool/")).json()
    assert body["authorization"] is None and body["txn"].count(".") == 2
    (entry,) = auth.cache.entries()
    assert entry.kind is TokenKind.TXN and {"format": "uri", "uri": AGENT_ID} in entry.subjects


# -- OAuth client credentials --------------------------------------------------------------------------


@pytest.fixture
async def auth_server() -> AsyncIterator[FakeAuthServer]:
    async with serve_auth_server(FakeAuthServer()) as server:
        yield server


async def test_client_secret_tokens_are_cached_until_near_expiry(auth_server: FakeAuthServer) -> None:
    auth_server.clients["agent-1"] = "s3cret"
    auth_server.token_ttl = 120
    now = [1000.0]
    async with httpx.AsyncClient() as http:
        source = ClientCredentials(
            auth_server.issuer + "/token",
            "agent-1",
            http=http,
            client_secret="s3cret",
            scope="ssf.manage",
            clock=lambda: now[0],
        )
        first = await source.token()
        now[0] += 80
        assert await source.token() == first and source.requests == 1
        now[0] += 11  # within refresh_margin (30 s) of expires_in
        assert await source.token() != first and source.requests == 2
        assert auth_server.token_requests[-1]["scope"] == "ssf.manage"
        assert await source.token(rejected="someone-else") != first and source.requests == 2
        bad = ClientCredentials(auth_server.issuer + "/token", "agent-1", http=http, client_secret="wrong")
        with pytest.raises(TokenError, match="401"):
            await bad.token()


async def test_private_key_jwt_client_authentication(auth_server: FakeAuthServer) -> None:  # RFC 7523
    key = new_key("ES256")
    auth_server.clients["agent-2"] = key
    async with httpx.AsyncClient() as http:
        source = ClientCredentials(auth_server.issuer + "/token", "agent-2", http=http, private_key=key)
        assert (await source.token()).count(".") == 2
        form = auth_server.token_requests[-1]
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        assert "client_secret" not in form
        impostor = ClientCredentials(
            auth_server.issuer + "/token", "agent-2", http=http, private_key=new_key("ES256")
        )
        with pytest.raises(TokenError):
            await impostor.token()
    with pytest.raises(ValueError, match="exactly one"):
        ClientCredentials("https://as/token", "x", http=http)


async def test_a_static_token_cannot_be_refreshed() -> None:
    async def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(refuse), auth=BearerAuth(StaticToken("t"))
    ) as client:
        with pytest.raises(TokenError):
            await client.get("http://transmitter/")
