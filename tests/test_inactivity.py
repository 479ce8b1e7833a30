"""Inactivity timeout (R-STREAM-4): idle streams are paused, and stream-updated goes out first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.auth.tokens import LOCAL_ISSUER, Principal
from hub.core.model import POLL_METHOD, Status, SubjectMode
from hub.core.streams import StreamPolicy
from hub.delivery.wakeup import QueueSignal
from hub.keys.ring import SigningKeyRing
from hub.store import SQLiteStore
from hub.transmitter.issuing import Transmitter
from hub.transmitter.management import StreamManagement
from receivers.events import CATALOGUE, STREAM_UPDATED


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "hub.sqlite3")
    await s.open()
    yield s
    await s.close()


def _management(store: SQLiteStore, clock: FakeClock) -> StreamManagement:
    transmitter = Transmitter(store, SigningKeyRing.generate("ES256", clock()), QueueSignal(), clock=clock)
    policy = StreamPolicy(CATALOGUE.deliverable_uris(), (POLL_METHOD,), 0, inactivity_timeout=600)
    return StreamManagement(
        store,
        transmitter,
        issuer="https://hub.example",
        policy=policy,
        poll_url=lambda sid: f"https://hub.example/ssf/poll/{sid}",
        default_subjects=SubjectMode.NONE,
        clock=clock,
    )


RECEIVER = Principal(sub="agent-1", scopes=frozenset({"ssf.manage"}), issuer=LOCAL_ISSUER, client_id=None)


async def test_idle_stream_is_paused_after_announcing_it(store: SQLiteStore) -> None:
    clock = FakeClock()
    streams = _management(store, clock)
    stream = await streams.create(RECEIVER, {})
    assert stream.inactivity_timeout == 600

    clock.now += 599
    assert await streams.pause_inactive() == []

    clock.now += 2
    assert await streams.pause_inactive() == [stream.stream_id]
    assert (await store.get_stream(stream.stream_id)).status is Status.PAUSED  # type: ignore[union-attr]
    (announcement,) = await store.pending(stream.stream_id, 10, control_only=True)
    assert announcement.event_type == STREAM_UPDATED
    # Already paused: nothing more happens.
    clock.now += 10_000
    assert await streams.pause_inactive() == []


async def test_activity_restarts_the_timer(store: SQLiteStore) -> None:
    clock = FakeClock()
    streams = _management(store, clock)
    stream = await streams.create(RECEIVER, {})
    clock.now += 500
    await streams.get(RECEIVER, stream.stream_id)  # a management call referencing the stream
    clock.now += 500
    assert await streams.pause_inactive() == []
    clock.now += 101
    assert await streams.pause_inactive() == [stream.stream_id]
