"""Add/remove subject and how subjects route events (R-SUBJ-*, R-SUB-10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import CAEP, RunningHub, on_each_store, run_hub

ALICE = {"format": "email", "email": "alice@example.com"}
BOB = {"format": "email", "email": "bob@example.com"}


@on_each_store
async def test_add_subject_is_200_empty_and_remove_is_204(hub: RunningHub) -> None:  # R-SUBJ-1, -2, -4
    s = await hub.create_stream()
    r = await hub.client.post(
        "/ssf/subjects:add",
        json={"stream_id": s["stream_id"], "subject": ALICE, "verified": True},
        headers=hub.auth(),
    )
    assert r.status_code == 200 and r.content == b""
    r = await hub.client.post(
        "/ssf/subjects:remove", json={"stream_id": s["stream_id"], "subject": ALICE}, headers=hub.auth()
    )
    assert r.status_code == 204 and r.content == b""
    # removing what is not there is still 204 (no subject probing, R-SEC-6)
    r = await hub.client.post(
        "/ssf/subjects:remove", json={"stream_id": s["stream_id"], "subject": BOB}, headers=hub.auth()
    )
    assert r.status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"subject": {"format": "email", "email": "a@b.c"}},  # no stream_id
        {"stream_id": "S"},  # no subject
        {"stream_id": "S", "subject": {"format": "email"}},  # member missing (R-SUB-1)
        {"stream_id": "S", "subject": {"format": "email", "email": "a@b.c", "extra": 1}},  # extra member
        {"stream_id": "S", "subject": "alice"},
        {"stream_id": "S", "subject": {"format": "email", "email": "a@b.c"}, "verified": "yes"},
    ],
)
async def test_bad_subject_requests_are_400(hub: RunningHub, body: dict) -> None:  # R-SUBJ-3
    s = await hub.create_stream()
    if body.get("stream_id") == "S":
        body = {**body, "stream_id": s["stream_id"]}
    for path in ("/ssf/subjects:add", "/ssf/subjects:remove"):
        if path.endswith("remove") and "verified" in body:
            continue
        r = await hub.client.post(path, json=body, headers=hub.auth())
        assert r.status_code == 400, (path, body, r.text)


async def test_unknown_stream_is_404(hub: RunningHub) -> None:  # R-SUBJ-3
    r = await hub.client.post(
        "/ssf/subjects:add", json={"stream_id": "nope", "subject": ALICE}, headers=hub.auth()
    )
    assert r.status_code == 404


@on_each_store
async def test_default_subjects_none_routes_only_added_subjects(hub: RunningHub) -> None:  # R-DISC-4 NONE
    s = await hub.create_stream()
    assert (await hub.emit("session-revoked", ALICE))["sets"] == []
    await hub.add_subject(s["stream_id"], ALICE)
    sets = (await hub.emit("session-revoked", ALICE))["sets"]
    assert [x["stream_id"] for x in sets] == [s["stream_id"]]
    assert (await hub.emit("session-revoked", BOB))["sets"] == []
    await hub.client.post(
        "/ssf/subjects:remove", json={"stream_id": s["stream_id"], "subject": ALICE}, headers=hub.auth()
    )
    assert (await hub.emit("session-revoked", ALICE))["sets"] == []


async def test_email_domain_is_case_insensitive(hub: RunningHub) -> None:  # R-SUB-4
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], {"format": "email", "email": "alice@EXAMPLE.com"})
    assert len((await hub.emit("session-revoked", ALICE))["sets"]) == 1


@on_each_store
async def test_tenant_registration_gets_events_for_users_in_the_tenant(hub: RunningHub) -> None:  # R-SUB-10
    s = await hub.create_stream()
    tenant = {"format": "opaque", "id": "tenant-42"}
    await hub.add_subject(s["stream_id"], {"format": "complex", "tenant": tenant})
    event_subject = {"format": "complex", "user": ALICE, "tenant": tenant}
    assert len((await hub.emit("session-revoked", event_subject))["sets"]) == 1
    other_tenant = {"format": "complex", "user": ALICE, "tenant": {"format": "opaque", "id": "tenant-7"}}
    assert (await hub.emit("session-revoked", other_tenant))["sets"] == []


async def test_events_not_in_events_delivered_are_not_routed(hub: RunningHub) -> None:  # R-STREAM-3
    s = await hub.create_stream(events_requested=[CAEP + "credential-change"])
    await hub.add_subject(s["stream_id"], ALICE)
    assert (await hub.emit("session-revoked", ALICE))["sets"] == []
    claims = {"credential_type": "password", "change_type": "update"}
    assert len((await hub.emit("credential-change", ALICE, **claims))["sets"]) == 1


async def test_default_subjects_all_for_a_granted_receiver(tmp_path: Path) -> None:  # R-DISC-4 ALL
    async with run_hub(tmp_path, all_subjects_receivers="siem") as hub:
        s = await hub.create_stream(sub="siem")
        assert len((await hub.emit("session-revoked", ALICE))["sets"]) == 1
        r = await hub.client.post(
            "/ssf/subjects:remove",
            json={"stream_id": s["stream_id"], "subject": ALICE},
            headers=hub.auth("siem"),
        )
        assert r.status_code == 204
        assert (await hub.emit("session-revoked", ALICE))["sets"] == []  # pruned
        assert len((await hub.emit("session-revoked", BOB))["sets"]) == 1
        await hub.add_subject(s["stream_id"], ALICE, sub="siem")  # re-added
        assert len((await hub.emit("session-revoked", ALICE))["sets"]) == 1
        # another receiver still has NONE
        other = await hub.create_stream()
        assert other["stream_id"] not in {
            x["stream_id"] for x in (await hub.emit("session-revoked", BOB))["sets"]
        }


async def test_a_receiver_changing_subjects_too_fast_gets_429_and_others_do_not(
    tmp_path: Path,
) -> None:  # R-SUBJ-3 (429), R-PUSH-10's spirit: one client cannot monopolise the hub
    async with run_hub(tmp_path, subject_changes_per_second=0.01, subject_changes_burst=2) as hub:
        mine = await hub.create_stream(sub="busy")
        theirs = await hub.create_stream(sub="calm")

        def change(stream: dict, sub: str, subject: dict) -> Any:
            body = {"stream_id": stream["stream_id"], "subject": subject}
            return hub.client.post("/ssf/subjects:add", json=body, headers=hub.auth(sub))

        assert (await change(mine, "busy", ALICE)).status_code == 200
        assert (await change(mine, "busy", BOB)).status_code == 200
        r = await change(mine, "busy", {"format": "email", "email": "carol@example.com"})
        assert r.status_code == 429
        assert r.json()["err"] == "too_many_requests"
        assert int(r.headers["Retry-After"]) >= 1
        r = await hub.client.post(
            "/ssf/subjects:remove",
            json={"stream_id": mine["stream_id"], "subject": ALICE},
            headers=hub.auth("busy"),
        )
        assert r.status_code == 429  # removals spend the same budget
        assert (await change(theirs, "calm", ALICE)).status_code == 200  # another owner's budget
