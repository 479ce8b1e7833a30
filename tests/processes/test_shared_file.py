"""What lets several hub processes share one data dir (``serve --processes``): leases of a
process that is gone are freed by the next to open the file, and a key rotation made by one
process is taken by the others."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.cli.processes import Supervisor
from hub.config import Settings, load_settings
from hub.errors import ConfigError
from hub.keys.storage import FileKeyStorage
from hub.logs import fields_of
from hub.store import open_store
from hub.store.base import lease_holder
from hub.store.sqlite_engine import holder_alive


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    return int(done.stdout)


def test_a_lease_holder_names_its_process() -> None:
    holder = lease_holder()
    assert holder.split(".")[0] == str(os.getpid()) and lease_holder() != holder
    assert not holder_alive(holder)  # this process, at open, is a fresh run: its old leases go
    assert holder_alive(f"{os.getppid()}.x")  # the test runner's parent runs
    assert not holder_alive(f"{dead_pid()}.x")
    assert not holder_alive("0123abcd")  # a holder from before holders named their process


async def test_a_sibling_process_frees_only_the_leases_of_processes_that_are_gone(tmp_path: Path) -> None:
    live, gone, now = f"{os.getppid()}.live", f"{dead_pid()}.gone", time.time()
    first = open_store("sqlite", data_dir=tmp_path)
    await first.open()
    assert await first.acquire_lease("push:a", live, now=now, ttl=30)
    assert await first.acquire_lease("push:b", gone, now=now, ttl=30)
    await first.close()

    sibling = open_store("sqlite", data_dir=tmp_path, sibling_processes=True)
    await sibling.open()
    try:
        assert not await sibling.acquire_lease("push:a", "me", now=now, ttl=30)  # still held
        assert await sibling.acquire_lease("push:b", "me", now=now, ttl=30)  # freed at open
    finally:
        await sibling.close()

    alone = open_store("sqlite", data_dir=tmp_path)  # one serve per data dir: frees every lease
    await alone.open()
    try:
        assert await alone.acquire_lease("push:a", "me", now=now, ttl=30)
    finally:
        await alone.close()


async def test_a_rotation_by_one_process_is_taken_by_the_others_sharing_the_files(tmp_path: Path) -> None:
    one, other = FileKeyStorage(tmp_path, shared=True), FileKeyStorage(tmp_path, shared=True)
    now = time.time()
    ring_one, ring_other = await one.load_ring("ES256", now), await other.load_ring("ES256", now)
    assert ring_one.active.kid == ring_other.active.kid
    assert not await other.reload_ring(ring_other)  # nothing new

    def rotate(ring: object) -> bool:
        ring.rotate(now + 1, 3600)  # type: ignore[attr-defined]
        return True

    assert await one.change_ring(ring_one, rotate)
    assert await other.reload_ring(ring_other)
    assert ring_other.active.kid == ring_one.active.kid
    assert {k.kid for k in ring_other.keys} == {k.kid for k in ring_one.keys}  # the old key stays published

    alone = FileKeyStorage(tmp_path)
    assert not alone.shared and not await alone.reload_ring(ring_other)  # one process: never re-read


def test_processes_must_be_between_1_and_64() -> None:
    assert load_settings(environ={"SSF_HUB_PROCESSES": "2"}).processes == 2
    for bad in ("0", "65"):
        with pytest.raises(ConfigError, match="processes"):
            load_settings(environ={"SSF_HUB_PROCESSES": bad})


def exit_at_once(settings: Settings, index: int) -> None:
    """A hub process that cannot start (spawned: must be importable)."""
    sys.exit(3)


def test_a_seat_that_keeps_dying_at_start_stops_serve_with_exit_1(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(processes=1)
    with socket.socket() as sock:
        supervisor = Supervisor(settings, sock, target=exit_at_once)
        with caplog.at_level(logging.WARNING, logger="hub.processes"):
            assert supervisor.run() == 1
    events = [fields_of(r) | {"msg": r.getMessage()} for r in caplog.records]
    assert [e["msg"] for e in events].count("hub_process_exited") == 4  # restarted four times ...
    failing = [e for e in events if e["msg"] == "hub_process_failing"]
    assert failing == [failing[0]] and failing[0]["quick_exits"] == 5 and failing[0]["exit_code"] == 3
