"""Opaque access tokens, checked by RFC 7662 introspection at a real loopback endpoint, behind
ContinuousAccessMiddleware: active tokens pass until a revocation, inactive ones get 401."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receivers import ContinuousAccess, ContinuousAccessMiddleware, IntrospectionIdentity, ReceivedEvent
from receivers.errors import TokenError
from receivers.events import SESSION_REVOKED
from tests.receivers.support import ALICE
from tests.support.servers import serve_app


@dataclass
class AuthorizationServer:
    """Introspection endpoint (RFC 7662 §2) for opaque tokens, for one resource server."""

    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    up: bool = True

    def app(self) -> Starlette:
        async def introspect(request: Request) -> JSONResponse:
            if not self.up:
                return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
            basic = request.headers.get("authorization", "").removeprefix("Basic ")
            if base64.b64decode(basic or "Og==").decode() != "tool-server:rs-secret":
                return JSONResponse({"error": "invalid_client"}, status_code=401)  # §2.1: RS authenticates
            form = dict(parse_qsl((await request.body()).decode()))
            self.requests.append(form)
            claims = self.tokens.get(form.get("token", ""))
            return JSONResponse({"active": True, **claims} if claims else {"active": False})

        return Starlette(routes=[Route("/introspect", introspect, methods=["POST"])])


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[tuple[AuthorizationServer, str]]:
    authorization = AuthorizationServer()
    async with serve_app(authorization.app()) as url:
        yield authorization, url + "/introspect"


async def test_opaque_tokens_are_introspected_cached_and_revocable(
    server: tuple[AuthorizationServer, str],
) -> None:
    authorization, endpoint = server
    now = time.time()
    authorization.tokens["opaque-alice"] = {
        "sub": "u-alice",
        "email": "alice@example.com",
        "iat": int(now) - 60,
        "exp": int(now) + 600,
        "aud": "tools",
    }
    authorization.tokens["opaque-other-aud"] = {"sub": "u-bob", "iat": int(now), "aud": "billing"}
    access = ContinuousAccess()
    async with httpx.AsyncClient() as http:
        identity = IntrospectionIdentity(
            endpoint, http=http, client_id="tool-server", client_secret="rs-secret", audience="tools"
        )
        app = ContinuousAccessMiddleware(Starlette(routes=[Route("/", hello)]), access, identity=identity)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tool") as tool:

            async def call(token: str) -> int:
                return (await tool.get("/", headers={"Authorization": f"Bearer {token}"})).status_code

            assert await call("opaque-alice") == 200
            assert await call("opaque-alice") == 200
            assert identity.requests == 1  # cached
            assert authorization.requests[0] == {"token": "opaque-alice", "token_type_hint": "access_token"}
            assert await call("not-a-token") == 401  # active: false
            assert await call("opaque-other-aud") == 401  # issued for another resource

            revoked_at = now - 30  # after the token's iat: the revocation applies at once, cache or not
            event = ReceivedEvent(
                iss="https://hub",
                jti="j",
                iat=revoked_at,
                aud=("x",),
                subject=ALICE,
                events={SESSION_REVOKED: {"event_timestamp": revoked_at}},
            )
            await access.revoke(event)
            assert await call("opaque-alice") == 401 and identity.requests == 3


async def test_the_cache_is_short_and_an_unreachable_endpoint_fails_closed(
    server: tuple[AuthorizationServer, str],
) -> None:
    authorization, endpoint = server
    authorization.tokens["t"] = {"sub": "u-alice", "iat": 1}
    clock = [1000.0]
    async with httpx.AsyncClient() as http:
        identity = IntrospectionIdentity(
            endpoint,
            http=http,
            client_id="tool-server",
            client_secret="rs-secret",
            cache_ttl=30,
            clock=lambda: clock[0],
        )
        headers = {"authorization": "Bearer t"}
        assert (caller := await identity(headers)) is not None
        assert caller.credentials[0].issued_at == 1.0
        clock[0] += 29
        await identity(headers)
        assert identity.requests == 1
        del authorization.tokens["t"]  # revoked at the authorization server
        clock[0] += 2
        with pytest.raises(TokenError, match="not active"):
            await identity(headers)
        authorization.up = False
        clock[0] += 31
        with pytest.raises(TokenError, match="503"):
            await identity(headers)
        assert await identity({}) is None  # no bearer token: no caller (the middleware decides)
        wrong = IntrospectionIdentity(endpoint, http=http, client_id="tool-server", client_secret="nope")
        authorization.up = True
        with pytest.raises(TokenError, match="401"):
            await wrong(headers)
