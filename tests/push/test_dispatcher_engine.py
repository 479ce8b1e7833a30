"""The push engine on a fake clock: the retry schedule and the pause window run without any
real waiting ("Nothing in the retry/pause logic sleeps in tests; the fake clock drives it").

A real SQLite store and a real loopback receiver; only time is fake. The dispatcher's
``sleeper`` advances the fake clock instead of waiting, so a day of retries takes well
under a second.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from hub.core.addresses import AddressPolicy
from hub.core.model import PUSH_METHOD, Attempt, Delivery, QueuedSet, Status, Stream
from hub.core.retry import DEFAULT_SCHEDULE, RetrySchedule
from hub.delivery.push.dispatcher import PushDispatcher, PushPolicy
from hub.delivery.push.egress import EndpointGuard
from hub.delivery.push.sender import PushSender
from hub.store.sqlite import SQLiteStore
from tests.support.receiver import Reply, push_receiver

T0 = 1_800_000_000.0
DAY = 86400.0
JITTER = 0.2


class FakeClock:
    """The dispatcher's clock and sleeper: sleeping moves time forward, instantly."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        if wake.is_set():  # woken: the real sleeper returns at once too
            return
        self.now += seconds
        self.slept += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real wait would


@dataclass
class Scheduled:
    at: float  # when the attempt was made
    next_at: float  # when the dispatcher scheduled the next one


class RecordingStore(SQLiteStore):
    """A real SQLite store that also remembers every next_attempt_at it was told."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.scheduled: list[Scheduled] = []

    async def record_attempt(
        self, attempt: Attempt, *, next_attempt_at: float, last_error: str | None
    ) -> None:
        self.scheduled.append(Scheduled(attempt.at, next_attempt_at))
        await super().record_attempt(attempt, next_attempt_at=next_attempt_at, last_error=last_error)


async def test_the_default_schedule_runs_on_a_fake_clock_and_pauses_once_after_the_window(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    store = RecordingStore(tmp_path / "hub.sqlite3")
    await store.open()
    paused: list[tuple[float, str]] = []
    done = asyncio.Event()

    async def pause(stream: Stream, reason: str) -> None:  # what StreamManagement.pause_failing does
        paused.append((clock(), reason))
        current = await store.get_stream(stream.stream_id)
        assert current is not None
        await store.save_stream(replace(current, status=Status.PAUSED, status_reason=reason))
        done.set()

    async with push_receiver() as receiver, httpx.AsyncHTTPTransport() as transport:
        receiver.default = Reply(503)
        stream = Stream(
            stream_id="s1",
            owner="receiver-1",
            iss="https://hub.example",
            aud="receiver-1",
            delivery=Delivery(PUSH_METHOD, receiver.url),
            events_delivered=(),
            created_at=T0,
        )
        await store.create_stream(stream)
        await store.enqueue([QueuedSet("s1", "jti-1", "header.payload.signature", "urn:test", queued_at=T0)])
        sender = PushSender(transport, EndpointGuard(AddressPolicy(allow_private=True)), timeout=5)
        # A worker waiting out a backoff wakes every lease_ttl / 2 to keep its lease; at the
        # default 30 s that is ~13,000 store round trips over two fake days, which is real
        # work, not waiting. A lease as long as the window keeps this test to the schedule.
        policy = PushPolicy(schedule=RetrySchedule(), pause_after=DAY, lease_ttl=2 * DAY)
        assert policy.schedule.delays == DEFAULT_SCHEDULE and policy.schedule.jitter == JITTER
        dispatcher = PushDispatcher(
            store, sender, policy=policy, pause=pause, clock=clock, rng=random.Random(7), sleeper=clock.sleep
        )
        started = time.monotonic()
        try:
            dispatcher.wake("s1")
            await asyncio.wait_for(done.wait(), 10)
            while dispatcher.active_streams:  # the paused stream's worker finds nothing and stops
                await asyncio.sleep(0.001)
        finally:
            await dispatcher.stop()
        elapsed = time.monotonic() - started
        health = await store.get_health("s1")
        attempts = len(receiver.received)
    await store.close()

    assert elapsed < 1.0, f"a day of retries took {elapsed:.2f} s of real time"
    assert clock.now - T0 > 2 * DAY * 0.8  # ... of fake time: the schedule, then the pause window
    scheduled = store.scheduled
    assert attempts == len(scheduled) >= len(DEFAULT_SCHEDULE) + 2
    # Each gap follows the schedule (delays[i] before attempt i + 1) within ±20 % jitter; once
    # the schedule is exhausted the last delay repeats.
    for i, s in enumerate(scheduled, start=1):
        expected = DEFAULT_SCHEDULE[min(i, len(DEFAULT_SCHEDULE) - 1)]
        gap = s.next_at - s.at
        assert expected * (1 - JITTER) <= gap <= expected * (1 + JITTER), (i, gap, expected)
    # ... and the next attempt was made when it was due, not earlier and not much later.
    assert scheduled[0].at == pytest.approx(T0)
    for before, after in itertools.pairwise(scheduled):
        assert after.at == pytest.approx(before.next_at, abs=1e-3)
    # The jitter is really applied (not the bare schedule).
    assert any(abs(s.next_at - s.at - DEFAULT_SCHEDULE[1 + i]) > 1e-6 for i, s in enumerate(scheduled[:10]))

    # The pause clock starts when the SET exhausts its schedule (its 12th failed attempt) and
    # the stream is paused at the first failure a whole window after that, once.
    exhausted_at = scheduled[len(DEFAULT_SCHEDULE) - 1].at
    assert health.failing_since == pytest.approx(exhausted_at)
    ((paused_at, reason),) = paused
    assert paused_at == pytest.approx(scheduled[-1].at)
    assert paused_at - exhausted_at >= DAY > scheduled[-2].at - exhausted_at
    assert reason.startswith("delivery failing: HTTP 503")
    assert len({r.body for r in receiver.received}) == 1  # the same SET every time


class LeaseCountingStore(SQLiteStore):
    """A real SQLite store that counts the lease writes made on it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.lease_writes = 0

    async def acquire_lease(self, name: str, holder: str, *, now: float, ttl: float) -> bool:
        self.lease_writes += 1
        return await super().acquire_lease(name, holder, now=now, ttl=ttl)

    async def release_lease(self, name: str, holder: str) -> None:
        self.lease_writes += 1
        await super().release_lease(name, holder)


async def never_paused(stream: Stream, reason: str) -> None:
    raise AssertionError(f"stream {stream.stream_id} paused: {reason}")


async def test_sets_queued_on_a_poll_stream_cost_the_push_dispatcher_no_lease(tmp_path: Path) -> None:
    # Every queued SET wakes the dispatcher; on a poll stream it must only look and leave
    # (issue #7: two lease writes per poll SET were measurable on the emit -> poll benchmark).
    store = LeaseCountingStore(tmp_path / "hub.sqlite3")
    await store.open()
    try:
        stream = Stream(
            stream_id="p1",
            owner="receiver-1",
            iss="https://hub.example",
            aud="receiver-1",
            delivery=Delivery("urn:ietf:rfc:8936"),
            events_delivered=(),
            created_at=T0,
        )
        await store.create_stream(stream)
        async with httpx.AsyncHTTPTransport() as transport:
            sender = PushSender(transport, EndpointGuard(AddressPolicy(allow_private=True)), timeout=5)
            dispatcher = PushDispatcher(store, sender, policy=PushPolicy(), pause=never_paused)
            for i in range(5):
                await store.enqueue([QueuedSet("p1", f"jti-{i}", "h.p.s", "urn:test", queued_at=T0)])
                dispatcher.wake("p1")
            for _ in range(100):
                if not dispatcher.active_streams:
                    break
                await asyncio.sleep(0.01)
            assert dispatcher.active_streams == 0
        assert store.lease_writes == 0
        assert len(await store.pending("p1", 10)) == 5  # left for the poller
    finally:
        await store.close()


async def test_a_stream_whose_lease_another_process_holds_costs_one_try_per_second_not_one_per_set(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    store = LeaseCountingStore(tmp_path / "hub.sqlite3")
    await store.open()
    stream = Stream(
        stream_id="s1",
        owner="receiver-1",
        iss="https://hub.example",
        aud="receiver-1",
        delivery=Delivery(PUSH_METHOD, "https://receiver.example/events"),
        events_delivered=(),
        created_at=T0,
    )
    await store.create_stream(stream)
    assert await store.acquire_lease("push:s1", "4242.other", now=T0, ttl=30)  # another process
    store.lease_writes = 0
    async with httpx.AsyncHTTPTransport() as transport:
        sender = PushSender(transport, EndpointGuard(AddressPolicy(allow_private=True)), timeout=5)
        policy = PushPolicy(schedule=RetrySchedule(), pause_after=DAY, held_elsewhere=1.0)

        async def pause(stream: Stream, reason: str) -> None:
            raise AssertionError("nothing is pushed here")

        dispatcher = PushDispatcher(
            store, sender, policy=policy, pause=pause, clock=clock, sleeper=clock.sleep
        )
        try:
            for _ in range(20):  # every SET queued anywhere wakes every process
                dispatcher.wake("s1")
                while dispatcher.active_streams:
                    await asyncio.sleep(0.001)
            assert store.lease_writes == 1  # one try, then the stream is left to its holder
            clock.now += 1.5  # ... for held_elsewhere; then this process looks again
            dispatcher.wake("s1")
            while dispatcher.active_streams:
                await asyncio.sleep(0.001)
            assert store.lease_writes == 2
        finally:
            await dispatcher.stop()
    await store.close()
