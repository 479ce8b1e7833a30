"""Gateway replicas sharing their receiver state in Redis (issue 17, problem 1).

Two replicas of a tool server poll one hub stream together; each SET reaches one of them (or
both, on a redelivery). With in-memory state each replica refused only the users it heard
about; with :class:`RedisState` both refuse every revoked user, exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receivers import (
    BearerJwtIdentity,
    ContinuousAccess,
    ContinuousAccessMiddleware,
    JwtVerifier,
    PollConsumer,
    ReceivedEvent,
    StaticKeys,
    StaticToken,
    StreamClient,
    StreamConfig,
    TokenKind,
)
from receivers.caller import Caller, Credential
from receivers.events import RISK_LEVEL_CHANGE, SESSION_REVOKED
from receivers.redis_state import RedisState
from tests.receivers.support import FakeAuthServer
from tests.support.hub import RunningHub, free_port, run_hub
from tests.support.receiver import eventually

USERS = 1000


def user(n: int) -> dict[str, Any]:
    return {"format": "email", "email": f"user{n}@example.com"}


def caller(subject: dict[str, Any], iat: float) -> Caller:
    return Caller((Credential(TokenKind.ACCESS, (subject,), iat, "sha256:test"),))


async def tool(request: Request) -> JSONResponse:
    return JSONResponse({"caller_credentials": len(request.state.caller.credentials)})


@dataclass
class Replica:
    state: RedisState
    access: ContinuousAccess
    consumer: PollConsumer
    http: httpx.AsyncClient  # to this replica's middleware
    handled: set[str] = field(default_factory=set)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with run_hub(tmp_path / "data", long_poll_seconds=1.0, all_subjects_receivers="gateway") as running:
        yield running


async def start_replica(
    stack: AsyncExitStack, client: StreamClient, stream: StreamConfig, redis_url: str, idp: FakeAuthServer
) -> Replica:
    state = await stack.enter_async_context(RedisState(redis_url))
    access = ContinuousAccess(revocations=state.revocations, policy_store=state.policy)
    receiver = client.receiver(stream, dispatcher=access.dispatcher)
    receiver.dedup = state.dedup
    consumer = client.poll_consumer(stream, receiver=receiver, request_timeout=10, max_events=50)
    verifier = JwtVerifier(StaticKeys([idp.key]), issuer=idp.issuer, audience="tools", typ="at+jwt")
    app = ContinuousAccessMiddleware(
        Starlette(routes=[Route("/tools/search", tool, methods=["POST"])]),
        access,
        identity=BearerJwtIdentity(verifier),
        feed=consumer,
    )
    transport = httpx.ASGITransport(app=app)
    http = await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://tool"))
    replica = Replica(state, access, consumer, http)

    def note(event: ReceivedEvent) -> None:
        replica.handled.add(event.jti)

    access.dispatcher.add(SESSION_REVOKED, note)
    await stack.enter_async_context(consumer.running())
    return replica


@pytest.mark.timeout(300)  # 1,000 SETs through a real hub on a shared machine
@pytest.mark.parametrize(("streams", "users"), [("one stream", USERS), ("a stream each", 200)])
async def test_two_replicas_on_redis_state_refuse_every_revoked_user(
    hub: RunningHub, redis_url: str, streams: str, users: int
) -> None:
    idp = FakeAuthServer()
    idp.issuer = "https://idp.example.com"
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("gateway")))
        stream = await client.create_stream(events_requested=[SESSION_REVOKED])
        one = await start_replica(stack, client, stream, redis_url, idp)
        if streams == "a stream each":
            stream = await client.create_stream(events_requested=[SESSION_REVOKED])
        two = await start_replica(stack, client, stream, redis_url, idp)
        issued_before = time.time() - 60  # every user's current token predates the revocations

        # One cheap check per user warms both replicas' caches with "not revoked".
        for replica in (one, two):
            for n in range(users):
                assert (await replica.access.check(caller(user(n), issued_before))).allowed

        limit = asyncio.Semaphore(8)
        emitted: set[str] = set()

        async def emit(n: int) -> None:
            async with limit:
                for attempt in range(3):  # a pooled connection the busy hub cut: send it again
                    try:
                        sets = (await hub.emit("session-revoked", user(n)))["sets"]
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                        continue
                    emitted.update(s["jti"] for s in sets)
                    return

        await asyncio.gather(*(emit(n) for n in range(users)))
        assert len(emitted) == users * (2 if streams == "a stream each" else 1)
        await eventually(lambda: one.handled | two.handled >= emitted, timeout=60)
        assert one.handled and two.handled  # both replicas took part
        for replica in (one, two):  # every change published so far has reached its cache
            await replica.state.sync()

        for replica in (one, two):
            refused = [
                n
                for n in range(users)
                if (await replica.access.check(caller(user(n), issued_before))).status == 401
            ]
            assert len(refused) == users  # 0 missed, by either replica
            fresh = await replica.access.check(caller(user(7), time.time() + 2))
            assert fresh.allowed  # a token issued after the revocation passes
            assert (await replica.access.check(caller(user(users + 1), issued_before))).allowed

        # Through the middleware of each replica: the same verdicts, the caller reaches the app.
        stale = idp.mint("u-3", iat=issued_before, email="user3@example.com")
        other = idp.mint("u-x", iat=issued_before, email="someone@example.com")
        for replica in (one, two):
            r = await replica.http.post("/tools/search", headers={"Authorization": f"Bearer {stale}"})
            assert r.status_code == 401 and "retry-after" in r.headers
            r = await replica.http.post("/tools/search", headers={"Authorization": f"Bearer {other}"})
            assert r.status_code == 200 and r.json() == {"caller_credentials": 1}
        assert one.state.cache.hits > 0  # the warm-up was served from the local cache


async def test_a_policy_decision_on_one_replica_is_enforced_by_the_other(redis_url: str) -> None:
    alice = {"format": "email", "email": "alice@example.com"}
    async with RedisState(redis_url) as state_one, RedisState(redis_url) as state_two:
        one = ContinuousAccess(revocations=state_one.revocations, policy_store=state_one.policy)
        two = ContinuousAccess(revocations=state_two.revocations, policy_store=state_two.policy)
        now = time.time()
        assert (await two.check(caller(alice, now))).allowed  # cached on replica two: allowed

        def risk(level: str, at: float, jti: str) -> ReceivedEvent:
            payload = {"principal": "USER", "current_level": level, "event_timestamp": int(at)}
            return ReceivedEvent(
                iss="https://hub",
                jti=jti,
                iat=int(at),
                aud=("gw",),
                subject=alice,
                events={RISK_LEVEL_CHANGE: payload},
            )

        await one.dispatcher.dispatch(risk("HIGH", now - 10, "j1"))
        await state_two.sync()
        verdict = await two.check(caller(alice, now))
        assert verdict.status == 403 and "HIGH" in verdict.reason
        # A late, older LOW (heard by replica two) does not undo the newer HIGH.
        await two.dispatcher.dispatch(risk("LOW", now - 3600, "j0"))
        assert (await one.check(caller(alice, now))).status == 403
        assert (await state_one.policy.facts(alice))["risk_level"] == "HIGH"
        # A newer LOW does.
        await two.dispatcher.dispatch(risk("LOW", now - 1, "j2"))
        await state_one.sync()
        assert (await one.check(caller(alice, now))).allowed


async def test_a_gateway_whose_redis_is_down_fails_closed() -> None:
    idp = FakeAuthServer()
    idp.issuer = "https://idp.example.com"
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    access = ContinuousAccess(revocations=state.revocations, policy_store=state.policy)
    verifier = JwtVerifier(StaticKeys([idp.key]), issuer=idp.issuer, audience="tools", typ="at+jwt")
    app = ContinuousAccessMiddleware(
        Starlette(routes=[Route("/tools/search", tool, methods=["POST"])]),
        access,
        identity=BearerJwtIdentity(verifier),
    )
    token = idp.mint("u-alice", email="alice@example.com")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tool") as http:
        r = await http.post("/tools/search", headers={"Authorization": f"Bearer {token}"})
    await state.close()
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["error_description"] == "access state unavailable"
