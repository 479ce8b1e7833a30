"""Signals in through the admin API: validate, route, one SET per stream (ssf.admin)."""

from __future__ import annotations

import time

import pytest

from tests.support.hub import CAEP, RISC, RunningHub, on_each_store
from tests.support.sets import event_of

ALICE = {"format": "email", "email": "alice@example.com"}
ADMIN = ("operator", "ssf.admin")


async def _post(hub: RunningHub, body: object):
    return await hub.client.post("/ssf/admin/events", json=body, headers=hub.auth(*ADMIN))


@on_each_store
async def test_emit_issues_one_signed_set_per_stream_with_a_shared_txn(
    hub: RunningHub,
) -> None:  # R-SET-5, -14
    a = await hub.create_stream(sub="agent-a")
    b = await hub.create_stream(sub="gateway-b")
    await hub.add_subject(a["stream_id"], ALICE, sub="agent-a")
    await hub.add_subject(b["stream_id"], ALICE, sub="gateway-b")
    before = int(time.time())
    result = await hub.emit("session-revoked", ALICE, reason_admin={"en": "stolen laptop"})
    assert [s["stream_id"] for s in result["sets"]] == [a["stream_id"], b["stream_id"]]
    assert len({s["jti"] for s in result["sets"]}) == 2
    (ca,) = await hub.poll_verified(a, sub="agent-a")
    (cb,) = await hub.poll_verified(b, sub="gateway-b")
    assert (ca["aud"], cb["aud"]) == ("agent-a", "gateway-b")  # each SET names its own receiver
    assert ca["txn"] == cb["txn"] == result["txn"]
    uri, payload = event_of(ca)
    assert uri == CAEP + "session-revoked"
    assert payload["reason_admin"] == {"en": "stolen laptop"}
    assert before <= payload["event_timestamp"] <= time.time() + 1  # filled in when absent
    assert ca["sub_id"] == ALICE


async def test_full_uri_and_explicit_txn(hub: RunningHub) -> None:
    s = await hub.create_stream(events_requested=[RISC + "account-disabled"])
    await hub.add_subject(s["stream_id"], ALICE)
    r = await _post(
        hub,
        {
            "event": RISC + "account-disabled",
            "subject": ALICE,
            "claims": {"reason": "hijacking"},
            "txn": "case-42",
        },
    )
    assert r.status_code == 200 and r.json()["txn"] == "case-42"
    (claims,) = await hub.poll_verified(s)
    assert claims["txn"] == "case-42"
    assert event_of(claims)[1]["reason"] == "hijacking"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"event": "credential-change", "subject": ALICE, "claims": {"credential_type": "password"}},
            "change_type",
        ),
        ({"event": "no-such-event", "subject": ALICE}, "unknown event type"),
        ({"event": "session-revoked", "subject": {"format": "email"}}, "email"),
        ({"event": "session-revoked"}, "subject"),
        ({"subject": ALICE}, "event"),
        ({"event": "session-revoked", "subject": ALICE, "claims": []}, "claims"),
        (
            {"event": "session-revoked", "subject": ALICE, "claims": {"initiating_entity": "robot"}},
            "initiating_entity",
        ),
        ({"event": "session-revoked", "subject": ALICE, "subjects": []}, "unknown field"),
        ({"event": "verification", "subject": ALICE}, "verification"),
        (
            {
                "event": "device-compliance-change",
                "subject": ALICE,
                "claims": {"current_status": "compliant"},
            },
            "previous_status",
        ),
    ],
)
async def test_invalid_events_are_refused_with_a_reason(hub: RunningHub, body: dict, fragment: str) -> None:
    r = await _post(hub, body)
    assert r.status_code == 400, r.text
    assert r.json()["err"] == "invalid_request"
    assert fragment in r.json()["description"]


async def test_emit_with_no_matching_stream_queues_nothing(hub: RunningHub) -> None:
    result = await hub.emit("session-revoked", ALICE)
    assert result["sets"] == [] and result["txn"]


async def test_emitted_sets_survive_a_restart(tmp_path, each_store) -> None:  # durably queued before 200
    from tests.support.hub import run_hub

    async with run_hub(tmp_path, **each_store) as hub:
        s = await hub.create_stream()
        await hub.add_subject(s["stream_id"], ALICE)
        (item,) = (await hub.emit("session-revoked", ALICE))["sets"]
    async with run_hub(tmp_path, **each_store, port=hub.settings.port) as hub:
        (claims,) = await hub.poll_verified(s)
        assert claims["jti"] == item["jti"]


async def test_deprecated_risc_sessions_revoked_goes_out_as_caep_session_revoked(
    hub: RunningHub,
) -> None:  # R-RISC-9
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    r = await _post(hub, {"event": RISC + "sessions-revoked", "subject": ALICE})
    assert r.status_code == 200 and len(r.json()["sets"]) == 1
    (claims,) = await hub.poll_verified(s)
    assert list(claims["events"]) == [CAEP + "session-revoked"]
