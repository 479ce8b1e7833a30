"""The batch form of the admin emit: ``POST /ssf/admin/events`` with ``{"events": [...]}``.

Each event gets its own txn and result, in order; the whole batch is checked before anything
is queued, so one bad element refuses it (400 naming the element's index) and queues nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.hub import RISC, RunningHub, on_each_store

ALICE = {"format": "email", "email": "alice@example.com"}
BOB = {"format": "email", "email": "bob@example.com"}
NOBODY = {"format": "email", "email": "nobody@example.com"}
ADMIN = ("secops", "ssf.admin")


async def _post(hub: RunningHub, body: object) -> Any:
    return await hub.client.post("/ssf/admin/events", json=body, headers=hub.auth(*ADMIN))


async def _audit(hub: RunningHub, **params: str) -> list[dict[str, Any]]:
    r = await hub.client.get("/ssf/admin/audit", params=params, headers=hub.auth(*ADMIN))
    assert r.status_code == 200, r.text
    records: list[dict[str, Any]] = r.json()["records"]
    return records


@on_each_store
async def test_a_batch_answers_one_result_and_one_txn_per_event_in_order(hub: RunningHub) -> None:
    a = await hub.create_stream(sub="agent-a")
    b = await hub.create_stream(sub="gateway-b")
    await hub.add_subject(a["stream_id"], ALICE, sub="agent-a")
    await hub.add_subject(b["stream_id"], ALICE, sub="gateway-b")
    await hub.add_subject(b["stream_id"], BOB, sub="gateway-b")
    r = await _post(
        hub,
        {
            "events": [
                {"event": "session-revoked", "subject": ALICE},
                {"event": "session-revoked", "subject": BOB, "txn": "case-7"},
                {"event": "session-revoked", "subject": NOBODY},
            ]
        },
    )
    assert r.status_code == 200, r.text
    alice, bob, nobody = r.json()["events"]
    assert [s["stream_id"] for s in alice["sets"]] == [a["stream_id"], b["stream_id"]]
    assert [s["stream_id"] for s in bob["sets"]] == [b["stream_id"]]
    assert nobody["sets"] == [] and nobody["dropped_streams"] == []
    assert bob["txn"] == "case-7"
    assert len({alice["txn"], bob["txn"], nobody["txn"]}) == 3  # one txn per event

    on_a = await hub.poll_verified(a, sub="agent-a")
    on_b = await hub.poll_verified(b, sub="gateway-b")
    assert [c["jti"] for c in on_a] == [alice["sets"][0]["jti"]]
    assert {c["jti"]: c["txn"] for c in on_b} == {
        alice["sets"][1]["jti"]: alice["txn"],
        bob["sets"][0]["jti"]: "case-7",
    }
    assert {c["sub_id"]["email"] for c in on_b} == {"alice@example.com", "bob@example.com"}

    # Each event is audited on its own, as a single emit is; one that reached nothing too.
    for result, subject in ((alice, ALICE), (bob, BOB), (nobody, NOBODY)):
        (record,) = await _audit(hub, txn=result["txn"])
        assert (record["kind"], record["actor"], record["subject"]) == ("event_emitted", "secops", subject)
        assert record["streams"] == len(result["sets"])


@on_each_store
async def test_one_bad_element_refuses_the_batch_naming_its_index_and_queues_nothing(
    hub: RunningHub,
) -> None:
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    good = {"event": "session-revoked", "subject": ALICE, "txn": "must-not-exist"}
    bad = {"event": "credential-change", "subject": ALICE, "claims": {"credential_type": "password"}}
    r = await _post(hub, {"events": [good, good | {"txn": "also-not"}, bad]})
    assert r.status_code == 400, r.text
    assert r.json()["err"] == "invalid_request"
    assert r.json()["description"].startswith("events[2]: ")
    assert "change_type" in r.json()["description"]  # the element's own reason follows
    assert (await hub.poll(s))["sets"] == {}  # the good elements before it were not queued
    assert await _audit(hub, txn="must-not-exist") == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"events": []}, "events must be a list of 1 to 1000"),
        ({"events": {"event": "session-revoked"}}, "events must be a list"),
        ({"events": [{"event": "session-revoked", "subject": ALICE}] * 1001}, "1 to 1000"),
        (
            {"events": [{"event": "session-revoked", "subject": ALICE}], "event": "session-revoked"},
            "no other field",
        ),
        ({"events": [{"event": "session-revoked", "subject": ALICE}, "session-revoked"]}, "events[1]: "),
        ({"events": [{"event": "session-revoked"}]}, "events[0]: subject is required"),
        ({"events": [{"subject": ALICE}]}, "events[0]: event is required"),
        ({"events": [{"event": "session-revoked", "subject": ALICE, "subjects": []}]}, "events[0]: unknown"),
        ({"events": [{"event": "verification", "subject": ALICE}]}, "events[0]: "),
        ({"events": [{"event": "session-revoked", "subject": {"format": "email"}}]}, "events[0]: "),
        ({"events": [{"event": "session-revoked", "subject": ALICE, "txn": ""}]}, "events[0]: txn"),
    ],
)
async def test_malformed_batches_are_refused_with_a_reason(
    hub: RunningHub, body: dict[str, Any], fragment: str
) -> None:
    r = await _post(hub, body)
    assert r.status_code == 400, r.text
    assert r.json()["err"] == "invalid_request"
    assert fragment in r.json()["description"]


async def test_a_batch_keeps_each_events_own_type_and_claims(hub: RunningHub) -> None:
    s = await hub.create_stream(events_requested=[RISC + "account-disabled", RISC + "account-enabled"])
    await hub.add_subject(s["stream_id"], ALICE)
    r = await _post(
        hub,
        {
            "events": [
                {"event": RISC + "account-disabled", "subject": ALICE, "claims": {"reason": "hijacking"}},
                {"event": RISC + "account-enabled", "subject": ALICE},
            ]
        },
    )
    assert r.status_code == 200, r.text
    results = r.json()["events"]
    first, second = await hub.poll_verified(s)  # in queue order: the batch's order
    assert [first["jti"], second["jti"]] == [results[0]["sets"][0]["jti"], results[1]["sets"][0]["jti"]]
    assert list(first["events"]) == [RISC + "account-disabled"]
    assert first["events"][RISC + "account-disabled"]["reason"] == "hijacking"
    assert list(second["events"]) == [RISC + "account-enabled"]
