"""The Unix-socket relay between the processes of ``serve --processes`` (hub.delivery.wakeup_local),
driven as two relays in one test process: real sockets, no hub around them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.delivery.wakeup import QueueSignal
from hub.delivery.wakeup_local import ProcessWakeupRelay, socket_name
from tests.support.receiver import eventually


class Seat:
    def __init__(self, data_dir: Path, index: int, count: int) -> None:
        self.signal = QueueSignal()
        self.woken: list[str] = []
        self.forgotten: list[str | None] = []
        self.signal.subscribe(self.woken.append)
        self.relay = ProcessWakeupRelay(
            data_dir, index, count, self.signal, forget_stream=self.forgotten.append
        )


@pytest.fixture
async def seats(tmp_path: Path) -> AsyncIterator[list[Seat]]:
    pair = [Seat(tmp_path, 0, 3), Seat(tmp_path, 1, 3)]  # seat 2 is never started: a peer being restarted
    for seat in pair:
        await seat.relay.start()
    yield pair
    for seat in pair:
        await seat.relay.stop()


async def test_a_notify_in_one_process_wakes_the_long_polls_and_push_of_the_other(seats: list[Seat]) -> None:
    a, b = seats
    held = b.signal.waiter("stream-1")
    a.signal.notify(["stream-1", "stream-2"])
    await eventually(held.is_set, timeout=2)
    assert b.woken == ["stream-1", "stream-2"]
    assert a.woken == ["stream-1", "stream-2"]  # and locally, once: nothing comes back
    await asyncio.sleep(0.02)
    assert a.woken == ["stream-1", "stream-2"]


async def test_what_is_said_in_one_loop_turn_goes_as_one_datagram_changes_first(seats: list[Seat]) -> None:
    a, b = seats
    order: list[str] = []
    b.relay.forget_stream = lambda sid: order.append(f"forget {sid}")
    b.signal.subscribe(lambda sid: order.append(f"wake {sid}"))
    a.signal.notify(["s1"])
    a.relay.send_change("s1")
    a.signal.notify(["s1", "s2"])
    await eventually(lambda: len(order) >= 3, timeout=2)
    assert order == ["forget s1", "wake s1", "wake s2"]  # a woken process reads the new record
    assert a.relay.sent == 2  # one change datagram and one wake datagram, to the one live peer


async def test_a_busy_peer_gets_its_share_later_and_an_absent_one_is_skipped(tmp_path: Path) -> None:
    sender = Seat(tmp_path, 0, 2)
    await sender.relay.start()
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # seat 1, bound but not reading yet
    busy.bind(socket_name(tmp_path, 1))
    try:
        for i in range(3000):  # far more datagrams than a Unix socket queues
            sender.signal.notify([f"s{i}"])
            await asyncio.sleep(0)
        assert sender.relay.deferred > 0  # the queue filled: the rest waits, merged
        got: set[str] = set()
        busy.setblocking(False)

        async with asyncio.timeout(5):
            while len(got) < 3000:
                try:
                    datagram = busy.recv(70_000)
                except BlockingIOError:
                    await asyncio.sleep(0.002)
                    continue
                assert datagram[:1] == b"w"
                got.update(raw.decode() for raw in datagram[1:].split(b"\n"))
        assert got == {f"s{i}" for i in range(3000)}  # nothing lost, however late
    finally:
        busy.close()
        await sender.relay.stop()


async def test_a_peer_that_is_not_there_costs_nothing_and_breaks_nothing(tmp_path: Path) -> None:
    alone = Seat(tmp_path, 0, 4)
    await alone.relay.start()
    try:
        alone.signal.notify(["s1"])
        alone.relay.send_change("s1")
        await asyncio.sleep(0.02)
        assert alone.woken == ["s1"] and alone.relay.sent == 0
    finally:
        await alone.relay.stop()


async def test_two_hubs_on_two_data_dirs_do_not_hear_each_other(tmp_path: Path) -> None:
    one, other = Seat(tmp_path / "one", 0, 2), Seat(tmp_path / "two", 1, 2)
    await one.relay.start()
    await other.relay.start()
    try:
        one.signal.notify(["s1"])
        await asyncio.sleep(0.05)
        assert other.woken == []
    finally:
        await one.relay.stop()
        await other.relay.stop()


def test_a_seat_outside_the_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not in 0\.\.1"):
        ProcessWakeupRelay(tmp_path, 2, 2, QueueSignal())
