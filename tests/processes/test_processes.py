"""``ssf-hub serve --processes 2`` (issue #18): two hub processes behind one port on one SQLite
file (or, where a test says so, on Redis as replicas) behave as one hub. Each test pins its
HTTP connections to a chosen process (tests.processes.harness), so "the other process" is
certain, not likely."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.processes.harness import FAST_RETRIES, HubProcesses, hub_processes
from tests.push.helpers import ALICE, PUSH, jti_of
from tests.push.helpers import until as until_seen
from tests.support.process import SSF_HUB
from tests.support.receiver import eventually, push_receiver

REVOKE = {"event": "session-revoked", "subject": ALICE}


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """The hub processes' store: the SQLite file (None) or, as replicas, a real redis-server."""
    return None if request.param == "sqlite" else str(request.getfixturevalue("redis_url"))


async def test_a_long_poll_held_in_one_process_wakes_when_the_other_queues_a_set(
    tmp_path: Path, store_url: str | None
) -> None:
    async with hub_processes(tmp_path, redis_url=store_url) as hub:
        first, second = hub.pids()
        on_first, on_second = await hub.client_on(first), await hub.client_on(second)
        stream = await hub.create_stream(on_first)
        poll = f"/ssf/poll/{stream['stream_id']}"
        for holder, emitter in ((on_first, on_second), (on_second, on_first)):
            # Held for up to 20 s (the default) and re-read only when woken: a missed wake-up
            # across processes would show as a 20 s answer.
            held = asyncio.create_task(
                holder.post(poll, json={"maxEvents": 10, "returnImmediately": False}, headers=hub.auth())
            )
            await asyncio.sleep(0.3)
            started = time.monotonic()
            r = await emitter.post("/ssf/admin/events", json=REVOKE, headers=hub.admin())
            assert r.status_code == 200, r.text
            answer = await asyncio.wait_for(held, 10)
            waited = time.monotonic() - started
            assert hub.served_by(answer) != hub.served_by(r)  # really across processes
            assert answer.status_code == 200 and len(answer.json()["sets"]) == 1, answer.text
            # Well under the 20 s a missed wake-up would take, with room for a loaded CI machine.
            assert waited < 5.0, f"the long poll answered after {waited:.1f} s"
            acks = list(answer.json()["sets"])
            r = await holder.post(poll, json={"ack": acks, "returnImmediately": True}, headers=hub.auth())
            assert r.status_code == 200 and r.json()["sets"] == {}


async def test_a_stream_changed_in_one_process_is_read_back_changed_in_the_other(tmp_path: Path) -> None:
    async with hub_processes(tmp_path) as hub:
        first, second = hub.pids()
        on_first, on_second = await hub.client_on(first), await hub.client_on(second)
        stream = await hub.create_stream(on_first)
        sid, auth = stream["stream_id"], hub.auth()
        r = await on_second.get("/ssf/stream", params={"stream_id": sid}, headers=auth)
        assert r.status_code == 200 and r.json() == stream  # now cached in the second process

        r = await on_first.patch("/ssf/stream", json={"stream_id": sid, "description": "new"}, headers=auth)
        assert r.status_code == 200, r.text
        r = await on_first.post("/ssf/status", json={"stream_id": sid, "status": "paused"}, headers=auth)
        assert r.status_code == 200, r.text
        # The change notice is a datagram away; the cache has no expiry, so without the
        # notice the second process would answer the old record for ever.
        await until_seen(lambda: _answers(on_second, "/ssf/stream", sid, auth, "description", "new"))
        await until_seen(
            lambda: _answers(on_second, "/ssf/status", sid, auth, "status", "paused")
        )  # R-STATUS-1

        r = await on_first.delete("/ssf/stream", params={"stream_id": sid}, headers=auth)
        assert r.status_code == 204
        await until_seen(lambda: _gone(on_second, sid, auth))


async def test_push_from_both_processes_delivers_every_set_once_in_subject_order(
    tmp_path: Path, store_url: str | None
) -> None:
    subjects = [{"format": "email", "email": f"user{i}@example.com"} for i in range(8)]
    async with push_receiver() as receiver, hub_processes(tmp_path, redis_url=store_url) as hub:
        first, second = hub.pids()
        clients = [await hub.client_on(first), await hub.client_on(second)]
        stream = await hub.create_stream(clients[0], delivery={"method": PUSH, "endpoint_url": receiver.url})
        sid = stream["stream_id"]
        for subject in subjects:
            r = await clients[1].post(
                "/ssf/subjects:add", json={"stream_id": sid, "subject": subject}, headers=hub.auth()
            )
            assert r.status_code == 200, r.text

        emitted: dict[str, str] = {}  # jti -> subject email, in the order each was queued

        async def emit(client: httpx.AsyncClient, subject: dict[str, str]) -> None:
            r = await client.post(
                "/ssf/admin/events",
                json={"event": "session-revoked", "subject": subject},
                headers=hub.admin(),
            )
            assert r.status_code == 200, r.text
            emitted[r.json()["sets"][0]["jti"]] = subject["email"]

        # Both processes queue SETs; each subject's SETs are queued one after another.
        for round_ in range(15):
            await asyncio.gather(*(emit(clients[(round_ + i) % 2], s) for i, s in enumerate(subjects)))
        accepted = await receiver.wait_accepted(len(emitted), timeout=30)
        await asyncio.sleep(0.3)  # nothing more arrives: no duplicates

        jtis = [jti_of(body) for body in receiver.accepted()]
        assert Counter(jtis) == Counter(list(emitted))  # every SET, once
        queued_order = list(emitted)
        for email in {s["email"] for s in subjects}:
            mine = [j for j in jtis if emitted[j] == email]
            assert mine == [j for j in queued_order if emitted[j] == email]  # RFC 8935 order per subject
        assert len(accepted) == 120


async def test_metrics_from_either_process_count_the_sets_of_both(tmp_path: Path) -> None:
    async with hub_processes(tmp_path, env={"SSF_HUB_METRICS_PUBLIC": "true"}) as hub:
        first, second = hub.pids()
        on_first, on_second = await hub.client_on(first), await hub.client_on(second)
        await hub.create_stream(on_first)
        for client, times in ((on_first, 3), (on_second, 4)):
            for _ in range(times):
                r = await client.post("/ssf/admin/events", json=REVOKE, headers=hub.admin())
                assert r.status_code == 200, r.text
        for client in (on_first, on_second):
            text = (await client.get("/metrics")).text
            queued = [line for line in text.splitlines() if line.startswith("ssf_hub_sets_issued_total")]
            assert queued and sum(float(line.rsplit(" ", 1)[1]) for line in queued) == 7, queued


@pytest.mark.slow
async def test_a_hub_process_killed_mid_delivery_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    async with push_receiver() as receiver, hub_processes(tmp_path, env=FAST_RETRIES) as hub:
        receiver.delay = lambda body: 0.05  # slow enough that a kill lands mid-delivery
        first, second = hub.pids()
        on_first, on_second = await hub.client_on(first), await hub.client_on(second)
        stream = await hub.create_stream(on_first, delivery={"method": PUSH, "endpoint_url": receiver.url})
        assert stream["stream_id"]
        emitted: list[str] = []
        for i in range(40):
            r = await (on_first if i % 2 else on_second).post(
                "/ssf/admin/events", json=REVOKE, headers=hub.admin()
            )
            assert r.status_code == 200, r.text
            emitted += [s["jti"] for s in r.json()["sets"]]
        await receiver.wait_for(3)
        # Kill the process that holds the stream's push lease, with SETs on the wire.
        holders = _push_lease_holders(hub)
        assert len(holders) == 1 and holders[0] in (first, second), holders
        victim = holders[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        deadline = killed_at + 15
        while len(hub.pids()) < 2 or victim in hub.pids():
            assert time.monotonic() < deadline, hub.log.read_text()
            await asyncio.sleep(0.05)
        # At least once, every one (one on the wire when the process died may come twice).
        await eventually(lambda: set(emitted) <= {jti_of(body) for body in receiver.accepted()}, timeout=30)
        # Well inside the 30 s lease: the replacement freed its predecessor's lease at start.
        assert time.monotonic() - killed_at < 10
        log = hub.log.read_text()
        assert "hub_process_exited process=" in log and f"pid={victim} exit_code=-9" in log
        assert "process=0" in log and "process=1" in log  # every hub line names its process
        async with httpx.AsyncClient(base_url=hub.base) as fresh:
            text = (await fresh.get("/metrics", headers=hub.admin())).text
        assert "ssf_hub_process_starts_total 3.0" in text  # two, and one restart


def _push_lease_holders(hub: HubProcesses) -> list[int]:
    """The pids holding push leases (a holder is ``<pid>.<random>``, hub.store.base)."""
    with sqlite3.connect(hub.data_dir / "hub.sqlite3") as conn:
        rows = conn.execute("SELECT holder FROM leases WHERE name LIKE 'push:%'").fetchall()
    return [int(row[0].split(".")[0]) for row in rows]


@pytest.mark.slow
async def test_the_whole_serve_killed_stops_its_processes_and_a_restart_delivers_what_was_queued(
    tmp_path: Path,
) -> None:
    async with push_receiver() as receiver:
        receiver.delay = lambda body: 0.05
        async with hub_processes(tmp_path, env=FAST_RETRIES) as hub:
            pids = hub.pids()
            client = await hub.client_on(pids[0])
            await hub.create_stream(client, delivery={"method": PUSH, "endpoint_url": receiver.url})
            emitted: list[str] = []
            for _ in range(30):
                r = await client.post("/ssf/admin/events", json=REVOKE, headers=hub.admin())
                assert r.status_code == 200, r.text
                emitted += [s["jti"] for s in r.json()["sets"]]
            await receiver.wait_for(2)
            os.kill(hub.supervisor, signal.SIGKILL)  # no graceful anything
            # Orphaned, the hub processes notice and stop by themselves.
            await eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), timeout=15)
        delivered_before = {jti_of(body) for body in receiver.accepted()}
        assert not set(emitted) <= delivered_before  # the kill landed with SETs still queued

        async with hub_processes(tmp_path, env=FAST_RETRIES):  # the same data dir
            await eventually(
                lambda: set(emitted) <= {jti_of(body) for body in receiver.accepted()}, timeout=30
            )


async def test_sigterm_stops_every_hub_process_gracefully_and_serve_exits_0(tmp_path: Path) -> None:
    async with hub_processes(tmp_path) as hub:
        pids = hub.pids()
        assert hub.popen is not None
        hub.popen.terminate()
        code = await asyncio.wait_for(asyncio.to_thread(hub.popen.wait), 40)
        assert code == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
        log = hub.log.read_text()
        assert log.count("Application shutdown complete") == 2  # each drained, none killed
        assert "did not stop" not in log and "Traceback" not in log


async def test_a_second_serve_on_the_same_port_is_refused_not_let_in(tmp_path: Path) -> None:
    # SO_REUSEPORT lets any process of the same user bind the port too; the kernel would then
    # split the connections between two unrelated hubs.
    (tmp_path / "first").mkdir()
    async with hub_processes(tmp_path / "first") as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
        argv = [SSF_HUB, "serve", "--processes", "2", "--port", str(hub.port)]
        second = await asyncio.to_thread(
            subprocess.run,
            [*argv, "--data-dir", str(tmp_path / "second")],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert second.returncode != 0
        assert f"cannot listen on 127.0.0.1:{hub.port}: Address already in use" in second.stderr
        assert len(hub.pids()) == 2  # the first hub, untouched


async def _answers(
    client: httpx.AsyncClient, path: str, sid: str, auth: dict[str, str], key: str, value: str
) -> bool:
    r = await client.get(path, params={"stream_id": sid}, headers=auth)
    return bool(r.status_code == 200 and r.json()[key] == value)


async def _gone(client: httpx.AsyncClient, sid: str, auth: dict[str, str]) -> bool:
    r = await client.get("/ssf/stream", params={"stream_id": sid}, headers=auth)
    return r.status_code == 404
