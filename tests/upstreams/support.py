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
