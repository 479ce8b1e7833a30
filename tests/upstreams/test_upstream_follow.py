"""An upstream link keeps the hub's subscription enabled (R-STATUS-3, R-STATUS-7): when the
transmitter announces a pause, the hub asks for the stream back at once, also when the
announcement comes while the hub is in the middle of checking the stream, and also when the
announcement comes before the pause itself (as R-STATUS-7 has it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

from tests.support.hub import RunningHub, run_hub
from tests.upstreams.support import FAST, eventually, upstream_record, wait_for_health
from tests.upstreams.test_upstream_quirks import subscribe
from tests.upstreams.transmitter import FakeTransmitter, Stream, run_transmitter


class Linked(NamedTuple):
    tx: FakeTransmitter
    hub: RunningHub
    stream: Stream  # the hub's stream at the transmitter
    gate: asyncio.Event  # the transmitter's status reads wait until it is set


@contextlib.asynccontextmanager
async def linked(tmp_path: Path) -> AsyncIterator[Linked]:
    """A hub subscribed by push to a fake transmitter whose status reads wait at a gate."""
    # Checks are 10 minutes apart: only the stream-updated events can explain a prompt re-enable.
    settings = {**FAST, "upstream_check_interval": 600}
    async with run_transmitter() as tx, run_hub(tmp_path / "hub", **settings) as hub:
        tx.receiver_aud = hub.issuer
        await subscribe(hub, tx, "idp", delivery="push")
        sid = (await wait_for_health(hub, "idp", "healthy"))["stream_id"]
        tx.status_gate = asyncio.Event()
        yield Linked(tx, hub, tx.streams[sid], tx.status_gate)


async def re_enabled_by_the_hub(stream: Stream) -> None:
    async def enabled_again() -> bool:
        return stream.status == "enabled"

    await eventually(enabled_again, timeout=10)
    assert stream.reason == "ssf-hub re-enabled its subscription"  # the hub asked for it back


async def test_a_pause_announced_while_the_hub_checks_the_stream_is_answered_at_once(tmp_path: Path) -> None:
    async with linked(tmp_path) as (tx, hub, stream, gate):
        # Paused and at once enabled again at the transmitter: the pause's announcement makes the
        # hub check the stream, and its status read finds it enabled ...
        stream.status, stream.reason = "paused", "maintenance"
        tx.announce(stream.stream_id)
        stream.status, stream.reason = "enabled", None
        await asyncio.wait_for(tx.status_held.wait(), 10)

        # ... and while that answer is on its way, the transmitter pauses the stream again.
        stream.status, stream.reason = "paused", "maintenance again"
        tx.announce(stream.stream_id)

        async def heard() -> bool:
            state = (await upstream_record(hub, "idp"))["state"]
            return bool(state["remote_status_reason"] == "maintenance again")

        await eventually(heard, timeout=10)
        gate.set()  # the check ends on its stale "enabled"
        await re_enabled_by_the_hub(stream)


async def test_a_pause_announced_before_it_happens_is_answered_when_it_happens(tmp_path: Path) -> None:
    async with linked(tmp_path) as (tx, _, stream, gate):
        # The transmitter says it is pausing the stream, and the hub checks at once: its status
        # read still finds the stream enabled, because the pause itself comes after the event.
        tx.announce(stream.stream_id, "paused", "maintenance")
        await asyncio.wait_for(tx.status_held.wait(), 10)
        stream.status, stream.reason = "paused", "maintenance"
        gate.set()
        await re_enabled_by_the_hub(stream)
