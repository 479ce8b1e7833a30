"""Shared steps of the ingest tests: trust an IdP, push a SET, read what a receiver got."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.hub import CAEP, RISC, RunningHub, run_hub
from tests.support.idp import FakeIdP, run_idp

SET_MEDIA_TYPE = "application/secevent+jwt"
ALICE = {"format": "email", "email": "alice@example.com"}
EVENTS = [CAEP + "session-revoked", CAEP + "credential-change", RISC + "account-disabled"]


async def trust(hub: RunningHub, idp: FakeIdP, **fields: Any) -> dict[str, Any]:
    """Register ``idp`` through the admin API (its jwks_uri unless ``fields`` say otherwise)."""
    body: dict[str, Any] = {"iss": idp.iss, "jwks_uri": idp.jwks_uri, **fields}
    r = await hub.client.post("/ssf/admin/issuers", json=body, headers=hub.auth("secops", "ssf.admin"))
    assert r.status_code in (200, 201), r.text
    data: dict[str, Any] = r.json()
    return data


async def push(
    hub: RunningHub,
    body: str | bytes,
    *,
    token: str | None = "default",
    content_type: str | None = SET_MEDIA_TYPE,
) -> httpx.Response:
    """POST one SET to /ssf/ingest as an upstream transmitter (scope ssf.ingest)."""
    headers: dict[str, str] = {}
    if token == "default":
        token = hub.token("idp-pusher", "ssf.ingest")
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await hub.client.post("/ssf/ingest", content=body, headers=headers)


async def receiver_stream(
    hub: RunningHub, subject: dict[str, Any] = ALICE, sub: str = "agent-1"
) -> dict[str, Any]:
    """A poll stream of ``sub`` that wants the test events about ``subject``."""
    stream = await hub.create_stream(sub, events_requested=EVENTS)
    await hub.add_subject(stream["stream_id"], subject, sub)
    return stream


async def received(hub: RunningHub, stream: dict[str, Any], sub: str = "agent-1") -> list[dict[str, Any]]:
    """The verified claims of every SET waiting on ``stream`` (not acknowledged)."""
    return await hub.poll_verified(stream, sub)


@asynccontextmanager
async def hub_and_idp(
    tmp_path: Path, alg: str = "RS256", **settings: Any
) -> AsyncIterator[tuple[RunningHub, FakeIdP]]:
    settings.setdefault("ingest_jwks_refetch_seconds", 0)
    async with run_idp(alg) as idp, run_hub(tmp_path / "hub", **settings) as hub:
        yield hub, idp
