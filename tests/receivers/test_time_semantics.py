"""Signals act by event time (issue 17, problems 4, 5, 6).

A revocation covers credentials issued before (or, with whole-second ``iat``, at) the event, and
the 401 says when a re-issued token will pass (``Retry-After``); policy facts fold by
``event_timestamp`` so a late, older event does not override a newer one, and are forgotten
after their TTL; a token cache drops only tokens issued before the event (R-CAEP-4, R-CAEP-8).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

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
    Decision,
    JwtVerifier,
    PollConsumer,
    ReceivedEvent,
    StaticKeys,
    StaticToken,
    StreamClient,
    StreamConfig,
    TokenCache,
)
from receivers.audit import ACCESS_REVOKED, EVENT_STALE
from receivers.events import RISK_LEVEL_CHANGE, SESSION_REVOKED
from receivers.policy import DecisionRecord, PolicyState
from tests.receivers.support import ALICE, FakeAuthServer
from tests.support.hub import RunningHub, run_hub
from tests.support.receiver import eventually


async def tool(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@dataclass
class Gateway:
    hub: RunningHub
    client: StreamClient
    stream: StreamConfig
    access: ContinuousAccess
    consumer: PollConsumer
    tools: httpx.AsyncClient
    idp: FakeAuthServer

    async def call(self, iat: float) -> httpx.Response:
        token = self.idp.mint("u-alice", iat=iat, email="alice@example.com", sid="s-1")
        return await self.tools.post("/tools/search", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def gate(tmp_path: Path) -> AsyncIterator[Gateway]:
    idp = FakeAuthServer()
    idp.issuer = "https://idp.example.com"
    async with (
        run_hub(tmp_path / "data", long_poll_seconds=1.0) as hub,
        httpx.AsyncClient(timeout=10) as http,
    ):
        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("receiver-1")))
        stream = await client.create_stream(events_requested=[SESSION_REVOKED, RISK_LEVEL_CHANGE])
        await client.add_subject(stream.stream_id, ALICE)
        access = ContinuousAccess()
        consumer = client.poll_consumer(stream, dispatcher=access.dispatcher, request_timeout=10)
        verifier = JwtVerifier(StaticKeys([idp.key]), issuer=idp.issuer, audience="tools", typ="at+jwt")
        app = ContinuousAccessMiddleware(
            Starlette(routes=[Route("/tools/search", tool, methods=["POST"])]),
            access,
            identity=BearerJwtIdentity(verifier),
            feed=consumer,
        )
        async with (
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tool") as tools,
            consumer.running(),
        ):
            yield Gateway(hub, client, stream, access, consumer, tools, idp)


async def test_same_second_reauthentication_is_told_when_to_come_back(gate: Gateway) -> None:
    assert (await gate.call(time.time() - 60)).status_code == 200
    revoked_at = int(time.time())
    await gate.hub.emit("session-revoked", ALICE, event_timestamp=revoked_at)
    await eventually(lambda: bool(gate.access.audit.find(ACCESS_REVOKED)))
    # The agent re-authenticates at once: its new token has the revocation's whole second.
    r = await gate.call(revoked_at)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    wait = int(r.headers["retry-after"])
    assert 0 <= wait <= 1 and wait >= math.ceil(revoked_at + 1 - time.time()) - 1
    await asyncio.sleep(wait)
    assert (await gate.call(int(time.time()))).status_code == 200  # issued after: passes
    # A stale token long after the revocation: refused, and it may re-authenticate right away.
    late = await gate.call(revoked_at - 100)
    assert late.status_code == 401 and late.headers["retry-after"] == "0"


async def test_a_late_older_policy_event_does_not_override_a_newer_one(gate: Gateway) -> None:
    now = int(time.time())
    await gate.hub.emit(
        "risk-level-change", ALICE, principal="USER", current_level="LOW", event_timestamp=now
    )
    await gate.hub.emit(
        "risk-level-change", ALICE, principal="USER", current_level="HIGH", event_timestamp=now - 3600
    )
    await eventually(lambda: bool(gate.access.audit.find(EVENT_STALE)))
    assert (await gate.call(now)).status_code == 200  # the hour-old HIGH did not flip Alice to deny
    assert (await gate.access.policy_state.facts(ALICE))["risk_level"] == "LOW"
    await gate.hub.emit(
        "risk-level-change", ALICE, principal="USER", current_level="HIGH", event_timestamp=now + 1
    )
    await eventually(lambda: len(gate.access.policy_state.state.history) == 2)  # type: ignore[attr-defined]
    r = await gate.call(now)
    assert r.status_code == 403 and "retry-after" not in r.headers


def _event(event_type: str, payload: dict[str, object], jti: str, iat: float) -> ReceivedEvent:
    return ReceivedEvent(
        iss="https://hub", jti=jti, iat=iat, aud=("gw",), subject=ALICE, events={event_type: payload}
    )


async def test_a_stale_revocation_keeps_tokens_fetched_after_it() -> None:
    cache = TokenCache(name="agent")
    now = time.time()
    cache.put("before", "tok-a", subjects=[ALICE], issued_at=now - 120, expires_at=now + 300)
    cache.put("after", "tok-b", subjects=[ALICE], issued_at=now - 10, expires_at=now + 300)
    access = ContinuousAccess(token_caches=[cache])
    await access.revoke(_event(SESSION_REVOKED, {"event_timestamp": int(now - 60)}, "j1", now))
    assert [e.key for e in cache.entries()] == ["after"]  # fetched after the revocation: kept
    assert [e.key for e in cache.invalidate(ALICE, issued_before=now)] == ["after"]


def test_policy_facts_are_forgotten_after_their_ttl() -> None:
    clock = [1_800_000_000.0]
    state = PolicyState(ttl=60, clock=lambda: clock[0])
    folded = state.fold(ALICE, RISK_LEVEL_CHANGE, {"principal": "USER", "current_level": "HIGH"}, clock[0])
    state.record(
        DecisionRecord(
            ALICE,
            Decision.deny("risk"),
            RISK_LEVEL_CHANGE,
            "j",
            "iss",
            None,
            clock[0],
            version=folded.version,
        )
    )
    assert state.denial([ALICE]) is not None
    clock[0] += 59
    assert state.facts(ALICE)["risk_level"] == "HIGH"
    clock[0] += 2
    assert state.facts(ALICE) == {} and state.denial([ALICE]) is None and state.current(ALICE) is None


def test_a_decision_from_older_facts_does_not_replace_a_newer_one() -> None:
    state = PolicyState()
    newer = DecisionRecord(ALICE, Decision.deny("HIGH"), RISK_LEVEL_CHANGE, "j2", "iss", None, 2.0, version=2)
    older = DecisionRecord(ALICE, Decision.allow(), RISK_LEVEL_CHANGE, "j1", "iss", None, 3.0, version=1)
    assert state.record(newer) == (True, None)
    assert state.record(older) == (False, newer)  # another replica decided from newer facts
    assert state.denial([ALICE]) == newer
