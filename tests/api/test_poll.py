"""Poll delivery (RFC 8936, R-POLL-*)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.hub import CAEP, RunningHub, on_each_store

ALICE = {"format": "email", "email": "alice@example.com"}


async def _stream(hub: RunningHub) -> dict:
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    return s


async def _emit_n(hub: RunningHub, n: int) -> list[str]:
    jtis = []
    for _ in range(n):
        (item,) = (await hub.emit("session-revoked", ALICE))["sets"]
        jtis.append(item["jti"])
    return jtis


async def test_empty_poll_has_required_sets_member(hub: RunningHub) -> None:  # R-POLL-3
    s = await _stream(hub)
    r = await hub.client.post(
        s["delivery"]["endpoint_url"], json={"returnImmediately": True}, headers=hub.auth()
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")  # R-POLL-1
    assert r.json() == {"sets": {}}


@on_each_store
async def test_max_events_and_more_available_keep_order(hub: RunningHub) -> None:  # R-POLL-2, -3, -8
    s = await _stream(hub)
    jtis = await _emit_n(hub, 5)
    first = await hub.poll(s, maxEvents=2)
    assert list(first["sets"]) == jtis[:2] and first["moreAvailable"] is True
    second = await hub.poll(s, maxEvents=2, ack=jtis[:2])
    assert list(second["sets"]) == jtis[2:4] and second["moreAvailable"] is True
    third = await hub.poll(s, maxEvents=10, ack=jtis[2:4])
    assert list(third["sets"]) == jtis[4:] and "moreAvailable" not in third


@on_each_store
async def test_unacknowledged_sets_are_redelivered(hub: RunningHub) -> None:  # R-POLL-6
    s = await _stream(hub)
    jtis = await _emit_n(hub, 2)
    assert list((await hub.poll(s))["sets"]) == jtis
    assert list((await hub.poll(s, ack=[jtis[0]]))["sets"]) == [jtis[1]]
    assert list((await hub.poll(s))["sets"]) == [jtis[1]]  # still not acked
    assert (await hub.poll(s, ack=[jtis[1]])) == {"sets": {}}


@on_each_store
async def test_ack_only_request(hub: RunningHub) -> None:  # R-POLL-4
    s = await _stream(hub)
    jtis = await _emit_n(hub, 3)
    assert await hub.poll(s, ack=jtis, maxEvents=0) == {"sets": {}}
    assert await hub.poll(s) == {"sets": {}}


async def test_unknown_acks_are_ignored(hub: RunningHub) -> None:  # R-POLL-8
    s = await _stream(hub)
    jtis = await _emit_n(hub, 1)
    assert list((await hub.poll(s, ack=["never-issued"]))["sets"]) == jtis


@on_each_store
async def test_set_errs_are_recorded_and_visible_to_admins(hub: RunningHub) -> None:  # R-POLL-2, -5
    s = await _stream(hub)
    jtis = await _emit_n(hub, 2)
    errs = {jtis[0]: {"err": "invalid_key", "description": "kid not found"}}
    r = await hub.client.post(
        s["delivery"]["endpoint_url"],
        json={"setErrs": errs, "maxEvents": 0, "returnImmediately": True},
        headers={**hub.auth(), "Content-Language": "en"},
    )
    assert r.status_code == 200 and r.json() == {"sets": {}}
    assert list((await hub.poll(s))["sets"]) == [jtis[1]]  # the reported SET left the queue
    r = await hub.client.get(
        f"/ssf/admin/streams/{s['stream_id']}/errors", headers=hub.auth("op", "ssf.admin")
    )
    (recorded,) = r.json()["set_errors"]
    assert (recorded["jti"], recorded["err"], recorded["description"]) == (
        jtis[0],
        "invalid_key",
        "kid not found",
    )


@on_each_store
async def test_long_poll_wakes_when_an_event_is_queued(
    hub: RunningHub,
) -> None:  # R-POLL-2 returnImmediately=false
    s = await _stream(hub)

    async def long_poll() -> tuple[dict, float]:
        started = time.monotonic()
        data = await hub.poll(s, returnImmediately=False)
        return data, time.monotonic() - started

    waiting = asyncio.create_task(long_poll())
    await asyncio.sleep(0.3)
    assert not waiting.done()  # held, not answered empty
    emitted = time.monotonic()
    (jti,) = await _emit_n(hub, 1)
    data, held = await waiting
    assert list(data["sets"]) == [jti]
    assert 0.3 <= held < 1.9  # woken by the event, well before the 2 s limit
    assert time.monotonic() - emitted < 1.0


async def test_long_poll_times_out_empty(hub: RunningHub) -> None:  # long poll limit (settings: 2 s)
    s = await _stream(hub)
    started = time.monotonic()
    assert await hub.poll(s, returnImmediately=False) == {"sets": {}}
    assert 1.8 <= time.monotonic() - started < 4


async def test_long_poll_returns_pending_sets_at_once(hub: RunningHub) -> None:
    s = await _stream(hub)
    jtis = await _emit_n(hub, 1)
    started = time.monotonic()
    assert list((await hub.poll(s, returnImmediately=False))["sets"]) == jtis
    assert time.monotonic() - started < 1


@on_each_store
async def test_a_long_poll_carrying_acks_gets_the_next_sets_at_once(hub: RunningHub) -> None:  # R-POLL-4
    """A receiver that keeps up: each long poll acknowledges the last batch and is answered at
    once with what queued meanwhile, never again with what it acknowledged."""
    s = await _stream(hub)
    first = await _emit_n(hub, 3)
    assert list((await hub.poll(s, maxEvents=2, returnImmediately=False))["sets"]) == first[:2]
    later = await _emit_n(hub, 2)
    started = time.monotonic()
    batch = await hub.poll(s, maxEvents=10, returnImmediately=False, ack=first[:2])
    assert list(batch["sets"]) == [first[2], *later]
    assert time.monotonic() - started < 1  # not held: SETs were pending
    # The acknowledgement is taken before a poll waits: a held poll has already applied it.
    waiting = asyncio.create_task(hub.poll(s, returnImmediately=False, ack=list(batch["sets"])))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    r = await hub.client.get("/ssf/admin/streams", headers=hub.auth("operator", "ssf.admin"))
    (row,) = [row for row in r.json() if row["stream_id"] == s["stream_id"]]
    assert row["queued"] == 0
    (jti,) = await _emit_n(hub, 1)
    assert list((await waiting)["sets"]) == [jti]


@on_each_store
async def test_long_poll_on_paused_stream_wakes_on_enable(hub: RunningHub) -> None:  # R-STATUS-5
    s = await _stream(hub)
    await hub.client.post(
        "/ssf/status", json={"stream_id": s["stream_id"], "status": "paused"}, headers=hub.auth()
    )
    jtis = await _emit_n(hub, 1)
    waiting = asyncio.create_task(hub.poll(s, returnImmediately=False))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await hub.client.post(
        "/ssf/status", json={"stream_id": s["stream_id"], "status": "enabled"}, headers=hub.auth()
    )
    assert list((await waiting)["sets"]) == jtis


@pytest.mark.parametrize(
    "body",
    [
        {"maxEvents": -1},
        {"maxEvents": "10"},
        {"maxEvents": True},
        {"returnImmediately": "yes"},
        {"ack": "jti"},
        {"ack": [1]},
        {"setErrs": []},
        {"setErrs": {"j": "bad"}},
        {"setErrs": {"j": {"description": "no err"}}},
        [],
    ],
)
async def test_bad_poll_requests_are_400(hub: RunningHub, body: object) -> None:  # R-POLL-7
    s = await _stream(hub)
    r = await hub.client.post(s["delivery"]["endpoint_url"], json=body, headers=hub.auth())
    assert r.status_code == 400, r.text
    assert r.json()["err"] == "invalid_request"


async def test_poll_needs_manage_scope_and_a_poll_stream(hub: RunningHub) -> None:  # R-POLL-1
    s = await _stream(hub)
    url = s["delivery"]["endpoint_url"]
    r = await hub.client.post(url, json={}, headers=hub.auth(scope="ssf.read"))
    assert r.status_code == 403
    r = await hub.client.post(url.rsplit("/", 1)[0] + "/unknown", json={}, headers=hub.auth())
    assert r.status_code == 404


async def test_max_events_is_capped(hub: RunningHub) -> None:  # DESIGN.md: maxEvents max 1,000
    s = await _stream(hub)
    await _emit_n(hub, 3)
    data = await hub.poll(s, maxEvents=10**9)
    assert len(data["sets"]) == 3


@on_each_store
async def test_each_stream_has_its_own_queue(hub: RunningHub) -> None:
    a = await _stream(hub)
    b = await _stream(hub)
    emitted = await hub.emit("session-revoked", ALICE)
    by_stream = {x["stream_id"]: x["jti"] for x in emitted["sets"]}
    assert set(by_stream) == {a["stream_id"], b["stream_id"]}
    (ca,) = await hub.poll_verified(a)
    assert ca["jti"] == by_stream[a["stream_id"]]
    await hub.poll(a, ack=[ca["jti"]])
    (cb,) = await hub.poll_verified(b)  # acking on a did not touch b
    assert cb["jti"] == by_stream[b["stream_id"]]
    assert ca["txn"] == cb["txn"] == emitted["txn"]  # R-SET-5
    assert next(iter(ca["events"])) == CAEP + "session-revoked"


@on_each_store
async def test_a_long_poll_abandoned_by_its_client_loses_nothing(hub: RunningHub) -> None:
    s = await _stream(hub)
    waiting = asyncio.create_task(hub.poll(s, returnImmediately=False))
    await asyncio.sleep(0.2)
    waiting.cancel()  # the client hangs up mid-poll
    with pytest.raises(asyncio.CancelledError):
        await waiting
    jtis = await _emit_n(hub, 1)
    assert list((await hub.poll(s, returnImmediately=False))["sets"]) == jtis
