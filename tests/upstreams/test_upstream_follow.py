"""An upstream link keeps the hub's subscription enabled (R-STATUS-3, R-STATUS-7): when the
transmitter announces a pause, the hub asks for the stream back at once, also when the
announcement comes while the hub is in the middle of checking the stream, and also when the
announcement comes before the pause itself (as R-STATUS-7 has it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.hub import run_hub
from tests.upstreams.support import FAST, eventually, upstream_record, wait_for_health
from tests.upstreams.test_upstream_quirks import subscribe
from tests.upstreams.transmitter import run_transmitter


async def test_a_pause_announced_while_the_hub_checks_the_stream_is_answered_at_once(tmp_path: Path) -> None:
    # Checks are 10 minutes apart: only the stream-updated events can explain a prompt re-enable.
    settings = {**FAST, "upstream_check_interval": 600}
    async with run_transmitter() as tx, run_hub(tmp_path / "hub", **settings) as hub:
        tx.receiver_aud = hub.issuer
        await subscribe(hub, tx, "idp", delivery="push")
        sid = (await wait_for_health(hub, "idp", "healthy"))["stream_id"]
        stream = tx.streams[sid]
        tx.status_gate = asyncio.Event()

        # Paused and at once enabled again at the transmitter: the pause's announcement makes the
        # hub check the stream, and its status read finds it enabled ...
        stream.status, stream.reason = "paused", "maintenance"
        tx.announce(sid)
        stream.status, stream.reason = "enabled", None
        await asyncio.wait_for(tx.status_held.wait(), 10)

        # ... and while that answer is on its way, the transmitter pauses the stream again.
        stream.status, stream.reason = "paused", "maintenance again"
        tx.announce(sid)

        async def heard() -> bool:
            state = (await upstream_record(hub, "idp"))["state"]
            return bool(state["remote_status_reason"] == "maintenance again")

        await eventually(heard, timeout=10)
        tx.status_gate.set()  # the check ends on its stale "enabled"

        async def enabled_again() -> bool:
            return stream.status == "enabled"

        await eventually(enabled_again, timeout=10)
        assert stream.reason == "ssf-hub re-enabled its subscription"  # the hub asked for it back


async def test_a_pause_announced_before_it_happens_is_answered_when_it_happens(tmp_path: Path) -> None:
    settings = {**FAST, "upstream_check_interval": 600}
    async with run_transmitter() as tx, run_hub(tmp_path / "hub", **settings) as hub:
        tx.receiver_aud = hub.issuer
        await subscribe(hub, tx, "idp", delivery="push")
        sid = (await wait_for_health(hub, "idp", "healthy"))["stream_id"]
        stream = tx.streams[sid]
        tx.status_gate = asyncio.Event()

        # The transmitter says it is pausing the stream, and the hub checks at once: its status
        # read still finds the stream enabled, because the pause itself comes after the event.
        tx.announce(sid, "paused", "maintenance")
        await asyncio.wait_for(tx.status_held.wait(), 10)
        stream.status, stream.reason = "paused", "maintenance"
        tx.status_gate.set()

        async def enabled_again() -> bool:
            return stream.status == "enabled"

        await eventually(enabled_again, timeout=10)
        assert stream.reason == "ssf-hub re-enabled its subscription"
