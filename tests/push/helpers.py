"""Shared pieces of the push tests: streams, the admin views, a scripted DNS resolver."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tests.support.hub import RunningHub

PUSH = "urn:ietf:rfc:8935"
ALICE = {"format": "email", "email": "alice@example.com"}
BOB = {"format": "email", "email": "bob@example.com"}
FAST = "0,0.05,0.05"  # a retry schedule short enough for end-to-end tests


def admin(hub: RunningHub) -> dict[str, str]:
    return hub.auth("operator", "ssf.admin")


async def push_stream(
    hub: RunningHub,
    url: str,
    *,
    sub: str = "receiver-1",
    subject: Mapping[str, Any] = ALICE,
    authorization: str | None = None,
) -> dict[str, Any]:
    """Create a push stream to ``url`` and add ``subject`` to it."""
    delivery: dict[str, Any] = {"method": PUSH, "endpoint_url": url}
    if authorization is not None:
        delivery["authorization_header"] = authorization
    stream = await hub.create_stream(sub, delivery=delivery)
    await hub.add_subject(stream["stream_id"], subject, sub=sub)
    return stream


async def emit_one(hub: RunningHub, subject: Mapping[str, Any] = ALICE) -> str:
    """Emit session-revoked for ``subject`` to exactly one stream; its jti."""
    (item,) = (await hub.emit("session-revoked", subject))["sets"]
    jti: str = item["jti"]
    return jti


async def trace(hub: RunningHub, ident: str) -> dict[str, Any]:
    r = await hub.client.get(f"/ssf/admin/trace/{ident}", headers=admin(hub))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def trace_of(hub: RunningHub, jti: str) -> dict[str, Any]:
    """The trace of a SET that went to one stream."""
    (item,) = (await trace(hub, jti))["sets"]
    result: dict[str, Any] = item
    return result


async def stream_view(hub: RunningHub, stream_id: str) -> dict[str, Any]:
    """The stream's row in the admin streams view (GET /ssf/admin/streams)."""
    r = await hub.client.get("/ssf/admin/streams", headers=admin(hub))
    assert r.status_code == 200, r.text
    (row,) = [s for s in r.json() if s["stream_id"] == stream_id]
    result: dict[str, Any] = row
    return result


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll an async ``check`` (one that asks the hub) until it holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def until_state(hub: RunningHub, jti: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    """Wait until the SET's trace shows ``state``; returns that trace."""
    seen: dict[str, Any] = {}

    async def check() -> bool:
        seen.update(await trace_of(hub, jti))
        return bool(seen["state"] == state)

    await until(check, timeout)
    return seen


async def until_drained(hub: RunningHub, stream_id: str, timeout: float = 10.0) -> None:
    """Wait until the stream has no SET left to deliver."""

    async def drained() -> bool:
        return int((await stream_view(hub, stream_id))["queued"]) == 0

    await until(drained, timeout)


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a compact JWT, unverified (tests verify with verify_set where it matters)."""
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def jti_of(token: str) -> str:
    jti: str = claims_of(token)["jti"]
    return jti


class FakeDNS:
    """An injected resolver (create_app(resolver=...)): names map to whatever the test says,
    and may be re-pointed later (DNS rebinding). Unknown names do not resolve."""

    def __init__(self, records: Mapping[str, list[str]] | None = None) -> None:
        self.records: dict[str, list[str]] = dict(records or {})
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.records:
            raise OSError(f"no such host {host}")
        return list(self.records[host])
