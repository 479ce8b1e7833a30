"""Shared pieces of the upstream subscription tests: an IdP-side ssf-hub and waiting helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tests.support.hub import CAEP, RunningHub

T = TypeVar("T")

ALICE = {"format": "email", "email": "alice@example.com"}
SESSION_REVOKED = CAEP + "session-revoked"
# The hub under test re-reads the store and checks its upstream streams quickly here.
FAST: dict[str, Any] = {
    "upstream_reload_interval": 0.2,
    "upstream_check_interval": 0.5,
    "long_poll_seconds": 1.0,
}
IDP: dict[str, Any] = {"default_subjects": "ALL", "allow_private_endpoints": True, "long_poll_seconds": 1.0}


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 15.0) -> T:
    """Await ``check()`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def emit_at_idp(idp: RunningHub, txn: str) -> dict[str, Any]:
    r = await idp.client.post(
        "/ssf/admin/events",
        json={"event": "session-revoked", "subject": ALICE, "txn": txn},
        headers=idp.auth("idp-operator", "ssf.admin"),
    )
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def idp_streams(idp: RunningHub) -> list[dict[str, Any]]:
    """Every stream at the IdP, as its operator sees them (status, queue depth)."""
    r = await idp.client.get("/ssf/admin/streams", headers=idp.auth("idp-operator", "ssf.admin"))
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()
    return data


UPSTREAM_CLAIM = "urn:ssf-hub:upstream"


def admin(hub: RunningHub) -> dict[str, str]:
    return hub.auth("secops", "ssf.admin")


async def upstream_record(hub: RunningHub, upstream_id: str) -> dict[str, Any]:
    """One upstream as the admin API shows it (configuration and state)."""
    r = await hub.client.get(f"/ssf/admin/upstreams/{upstream_id}", headers=admin(hub))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def wait_for_health(hub: RunningHub, upstream_id: str, health: str) -> dict[str, Any]:
    """The upstream's state once its health is ``health`` (with a stream, when healthy)."""

    async def check() -> dict[str, Any] | None:
        state: dict[str, Any] = (await upstream_record(hub, upstream_id))["state"]
        return state if state["health"] == health and (health != "healthy" or state["stream_id"]) else None

    found: dict[str, Any] = await eventually(check)
    return found


async def revocations_downstream(hub: RunningHub, stream: dict[str, Any], txn: str) -> dict[str, Any]:
    """Poll the hub's downstream stream until the session-revoked SET with ``txn`` arrives
    (every SET verified against the hub's JWKS); its claims."""

    async def check() -> dict[str, Any] | None:
        for claims in await hub.poll_verified(stream, sub="agent-1"):
            if claims.get("txn") == txn:
                return claims
        return None

    found: dict[str, Any] = await eventually(check)
    return found


async def downstream_poll_stream(hub: RunningHub) -> dict[str, Any]:
    """A downstream POLL stream at the hub, for alice's session revocations."""
    stream = await hub.create_stream("agent-1", events_requested=[SESSION_REVOKED])
    await hub.add_subject(stream["stream_id"], ALICE, sub="agent-1")
    return stream
