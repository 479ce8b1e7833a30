"""One CachedTokenAuth for many users and audiences, sync and async; Retry-After after a
revocation's 401; client-credentials refresh for short-lived tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receivers import CachedTokenAuth, ClientCredentials, TokenCache
from receivers.tokenauth import token_key
from tests.receivers.support import FakeAuthServer, serve_auth_server
from tests.support.servers import serve_app


@dataclass
class Tool:
    """A loopback tool that refuses the tokens in ``refused`` with 401 invalid_token."""

    refused: set[str] = field(default_factory=set)
    retry_after: str | None = None
    seen: list[tuple[float, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def call(request: Request) -> JSONResponse:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            self.seen.append((time.monotonic(), token))
            if token in self.refused:
                headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
                if self.retry_after is not None:
                    headers["Retry-After"] = self.retry_after
                return JSONResponse({"error": "invalid_token"}, status_code=401, headers=headers)
            return JSONResponse({"token": token})

        return Starlette(routes=[Route("/", call, methods=["GET", "POST"])])


@pytest.fixture
async def tool() -> AsyncIterator[tuple[Tool, str]]:
    served = Tool()
    async with serve_app(served.app()) as url:
        yield served, url


class Exchange:
    """A token source per (user, audience): token exchange stand-in counting its calls."""

    def __init__(self) -> None:
        self.calls: list[Hashable] = []

    def __call__(self, key: Hashable) -> str:
        self.calls.append(key)
        assert isinstance(key, tuple)
        return f"{key[0]}@{key[1]}#{len(self.calls)}"


async def test_one_auth_serves_every_user_by_context_and_by_request(tool: tuple[Tool, str]) -> None:
    _, url = tool
    exchange = Exchange()

    async def source(key: Hashable) -> str:  # async sources work too
        return exchange(key)

    auth = CachedTokenAuth(TokenCache(), source)
    async with httpx.AsyncClient(auth=auth) as http:
        with token_key(("alice", "tools")):
            assert (await http.get(url)).json()["token"] == "alice@tools#1"
            assert (await http.get(url)).json()["token"] == "alice@tools#1"  # cached per key
        with token_key(("bob", "tools")):
            assert (await http.get(url)).json()["token"] == "bob@tools#2"
        r = await http.get(url, extensions={"token_key": ("alice", "llm")})
        assert r.json()["token"] == "alice@llm#3"
        with pytest.raises(LookupError):
            await http.get(url)  # no key anywhere: refused rather than guessed
    assert exchange.calls == [("alice", "tools"), ("bob", "tools"), ("alice", "llm")]
    assert len(auth.cache) == 3


async def test_the_key_can_be_a_function_of_the_request(tool: tuple[Tool, str]) -> None:
    _, url = tool
    exchange = Exchange()
    auth = CachedTokenAuth(TokenCache(), exchange, key=lambda r: (r.headers["x-user"], r.url.host))
    async with httpx.AsyncClient(auth=auth) as http:
        assert (await http.get(url, headers={"x-user": "carol"})).json()["token"] == "carol@127.0.0.1#1"


async def test_sync_clients_get_tokens_and_reacquire_after_invalid_token(tool: tuple[Tool, str]) -> None:
    served, url = tool
    exchange = Exchange()
    auth = CachedTokenAuth(TokenCache(), exchange, key=("alice", "tools"))
    served.refused.add("alice@tools#1")

    def call() -> list[str]:
        with httpx.Client(auth=auth) as http:
            return [http.get(url).json()["token"], http.get(url).json()["token"]]

    assert await asyncio.to_thread(call) == ["alice@tools#2", "alice@tools#2"]
    assert auth.acquisitions == 2

    async def async_source(key: Hashable) -> str:
        return "never"

    mismatched = CachedTokenAuth(TokenCache(), async_source, key="k")
    with pytest.raises(TypeError, match="AsyncClient"):
        await asyncio.to_thread(lambda: httpx.Client(auth=mismatched).get(url))


async def test_a_revocation_401_with_retry_after_is_waited_out_once(tool: tuple[Tool, str]) -> None:
    served, url = tool
    served.refused.add("alice@tools#1")
    served.retry_after = "1"  # the middleware: a token issued before revoked_at + 1 s is refused too
    exchange = Exchange()
    auth = CachedTokenAuth(TokenCache(), exchange, key=("alice", "tools"))
    async with httpx.AsyncClient(auth=auth) as http:
        r = await http.get(url)
    assert r.status_code == 200 and r.json()["token"] == "alice@tools#2"
    (refused_at, _), (retried_at, retried) = served.seen
    assert retried == "alice@tools#2" and retried_at - refused_at >= 0.95


async def test_retry_after_is_bounded_and_a_second_refusal_is_returned(tool: tuple[Tool, str]) -> None:
    served, url = tool
    served.refused.update({"alice@tools#1", "alice@tools#2"})
    served.retry_after = "3600"
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    auth = CachedTokenAuth(TokenCache(), Exchange(), key=("alice", "tools"), max_retry_wait=5.0, sleep=sleep)
    async with httpx.AsyncClient(auth=auth) as http:
        r = await http.get(url)
    assert r.status_code == 401 and waits == [5.0] and len(served.seen) == 2


async def test_short_lived_client_credentials_tokens_are_reused() -> None:
    # refresh_margin (30 s) larger than the lifetime (10 s) would refetch on every call.
    async with serve_auth_server(FakeAuthServer()) as server:
        server.clients["gateway"] = "s3cret"
        server.token_ttl = 10
        now = [1000.0]
        source = ClientCredentials(
            server.issuer + "/token", "gateway", client_secret="s3cret", clock=lambda: now[0]
        )  # no http client given: it makes its own per token request
        first = await source.token()
        for _ in range(4):  # 4 s of calls
            now[0] += 1
            assert await source.token() == first
        assert source.requests == 1 and len(server.token_requests) == 1
        now[0] += 1.5  # past half the lifetime: refreshed before it expires
        assert await source.token() != first and source.requests == 2
