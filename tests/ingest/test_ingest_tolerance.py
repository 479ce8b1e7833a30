"""Real identity providers never lose a revocation (issue 15): an optional claim that does not
fit its schema is repaired or dropped, not refused; a ``strict`` issuer gets the old refusal.

Each case is a quirk seen from a real transmitter, reproduced by a signing identity provider on
loopback pushing to ``/ssf/ingest``; a downstream poll stream shows exactly what the hub
re-issued, and the audit record, the metric and the log line show what it changed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.logs import fields_of
from tests.ingest.helpers import hub_and_idp, push, received, receiver_stream, trust
from tests.support.hub import CAEP, SSF, RunningHub
from tests.support.idp import FakeIdP
from tests.support.sets import event_of

UPSTREAM_CLAIM = "urn:ssf-hub:upstream"
TOLERATED = "ssf_hub_ingest_tolerated_total"
ENUM_REFUSAL = "session-revoked: data.initiating_entity must be one of ['admin', 'user', 'policy', 'system']"


async def metric(hub: RunningHub, name: str, **labels: str) -> float:
    r = await hub.client.get("/metrics", headers=hub.auth("prometheus", "ssf.metrics"))
    assert r.status_code == 200, r.text
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def audit(hub: RunningHub, **params: str) -> list[dict[str, Any]]:
    r = await hub.client.get("/ssf/admin/audit", params=params, headers=hub.auth("secops", "ssf.admin"))
    assert r.status_code == 200, r.text
    records: list[dict[str, Any]] = r.json()["records"]
    return records


def log_events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    return [fields_of(r) for r in caplog.records if getattr(r, "ssf_event", None) == name]


def refusal(r: Any) -> str:
    assert r.status_code == 400, r.text
    assert r.json()["err"] == "invalid_request"
    description: str = r.json()["description"]
    return description


def upstream_set(idp: FakeIdP, hub: RunningHub, event: str, payload: dict[str, Any], **extra: Any) -> str:
    claims = idp.claims(hub.issuer, event=event, **extra)
    claims["events"] = {event: payload}
    return idp.sign(claims)


async def test_an_initiating_entity_outside_caeps_list_is_dropped_and_the_revocation_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hub.ingest")
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        # Duo's transmitter: a policy name where CAEP lists admin/user/policy/system (R-CAEP-2),
        # and a vendor claim of its own.
        payload = {"event_timestamp": 1700000000, "initiating_entity": "Duo policy", "duo_policy": "MFA-7"}

        r = await push(hub, upstream_set(idp, hub, CAEP + "session-revoked", payload, txn="duo-txn-1"))

        assert r.status_code == 202, r.text
        assert r.content == b""  # R-PUSH-4
        assert r.headers["ssf-hub-tolerated"] == "session-revoked.initiating_entity=dropped"
        (claims,) = await received(hub, stream)
        assert event_of(claims) == (
            CAEP + "session-revoked",
            {"event_timestamp": 1700000000, "duo_policy": "MFA-7"},  # dropped; the unknown claim kept
        )
        assert claims["txn"] == "duo-txn-1"
        assert claims[UPSTREAM_CLAIM]["iss"] == idp.iss
        (record,) = [r for r in await audit(hub, txn="duo-txn-1") if r["kind"] == "ingest_accepted"]
        assert record["tolerated"] == [
            {
                "event": "session-revoked",
                "member": "initiating_entity",
                "action": "dropped",
                "reason": ENUM_REFUSAL,
            }
        ]
        assert record["stream_ids"] == [stream["stream_id"]]
        labels = {"issuer": idp.iss, "event": "session-revoked", "action": "dropped"}
        assert await metric(hub, TOLERATED, **labels) == 1
        (line,) = log_events(caplog, "ingest_tolerated")
        assert line == {
            "issuer": idp.iss,
            "jti": claims[UPSTREAM_CLAIM]["jti"],
            "txn": "duo-txn-1",
            "changes": "session-revoked.initiating_entity=dropped",
        }
        # A retry of the same SET is a duplicate: nothing counted or logged twice.
        assert (await push(hub, r.request.content)).status_code == 202
        assert await metric(hub, TOLERATED, **labels) == 1
        assert len(log_events(caplog, "ingest_tolerated")) == 1


async def test_wrong_typed_optional_claims_are_dropped_or_mapped(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        payload = {
            "credential_type": "password",
            "change_type": "update",
            "friendly_name": 42,  # CAEP: a string
            "initiating_entity": ["admin"],  # CAEP: one string of a list
            "event_timestamp": "2023-11-14T22:13:20Z",  # CAEP: a NumericDate
        }

        r = await push(hub, upstream_set(idp, hub, CAEP + "credential-change", payload, txn="cc-1"))

        assert r.status_code == 202, r.text
        assert sorted(r.headers["ssf-hub-tolerated"].split(", ")) == [
            "credential-change.event_timestamp=mapped",
            "credential-change.friendly_name=dropped",
            "credential-change.initiating_entity=dropped",
        ]
        (claims,) = await received(hub, stream)
        assert event_of(claims) == (
            CAEP + "credential-change",
            {"credential_type": "password", "change_type": "update", "event_timestamp": 1700000000},
        )
        assert claims["txn"] == "cc-1"
        (record,) = [r for r in await audit(hub, txn="cc-1") if r["kind"] == "ingest_accepted"]
        assert sorted((c["member"], c["action"]) for c in record["tolerated"]) == [
            ("event_timestamp", "mapped"),
            ("friendly_name", "dropped"),
            ("initiating_entity", "dropped"),
        ]
        labels = {"issuer": idp.iss, "event": "credential-change"}
        assert await metric(hub, TOLERATED, **labels, action="dropped") == 2
        assert await metric(hub, TOLERATED, **labels, action="mapped") == 1


async def test_a_plain_string_reason_is_re_issued_as_an_english_language_map(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        payload = {
            "event_timestamp": 1700000000,
            "reason_admin": "Risky sign-in",
            "reason_user": {"en": "Please sign in again"},
        }

        r = await push(hub, upstream_set(idp, hub, CAEP + "session-revoked", payload, txn="reason-1"))

        assert r.status_code == 202, r.text
        assert r.headers["ssf-hub-tolerated"] == "session-revoked.reason_admin=mapped"
        (claims,) = await received(hub, stream)
        assert event_of(claims)[1] == {
            "event_timestamp": 1700000000,
            "reason_admin": {"en": "Risky sign-in"},  # R-CAEP-3, AMB-16
            "reason_user": {"en": "Please sign in again"},
        }
        (record,) = [r for r in await audit(hub, txn="reason-1") if r["kind"] == "ingest_accepted"]
        assert [(c["member"], c["action"]) for c in record["tolerated"]] == [("reason_admin", "mapped")]
        assert await metric(hub, TOLERATED, issuer=idp.iss, event="session-revoked", action="mapped") == 1


async def test_a_null_verification_state_is_read_as_absent(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        stream_subject = {"format": "opaque", "id": "upstream-stream-1"}

        r = await push(
            hub,
            upstream_set(idp, hub, SSF + "verification", {"state": None}, subject=stream_subject, txn="v-1"),
        )

        assert r.status_code == 202, r.text
        assert r.headers["ssf-hub-tolerated"] == "verification.state=absent"
        assert await received(hub, stream) == []  # a stream event is never fanned out
        (record,) = await audit(hub, txn="v-1")
        assert record["kind"] == "ingest_control"
        assert (record["event"], record["streams"], record["stream_ids"]) == (SSF + "verification", 0, [])
        assert record["tolerated"] == [
            {"event": "verification", "member": "state", "action": "absent", "reason": "null, read as absent"}
        ]
        assert await metric(hub, TOLERATED, issuer=idp.iss, event="verification", action="absent") == 1
        # A state that is not a string at all cannot be echoed back: dropped the same way.
        numeric = upstream_set(idp, hub, SSF + "verification", {"state": 12345}, subject=stream_subject)
        r = await push(hub, numeric)
        assert r.status_code == 202, r.text
        assert r.headers["ssf-hub-tolerated"] == "verification.state=dropped"


async def test_required_claims_and_the_replay_window_stay_strict(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path, ingest_dedup_days=1) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        missing = {"credential_type": "password", "initiating_entity": "Duo policy"}
        wrong = {"credential_type": "password", "change_type": "rotated"}

        missing_refusal = refusal(
            await push(hub, upstream_set(idp, hub, CAEP + "credential-change", missing))
        )
        wrong_refusal = refusal(await push(hub, upstream_set(idp, hub, CAEP + "credential-change", wrong)))
        on_hold = {"status": "on hold", "reason": 7}
        stream_subject = {"format": "opaque", "id": "upstream-stream-1"}
        status_refusal = refusal(
            await push(hub, upstream_set(idp, hub, SSF + "stream-updated", on_hold, subject=stream_subject))
        )
        old = upstream_set(idp, hub, CAEP + "session-revoked", {"initiating_entity": "Duo policy"})
        old_claims = idp.claims(hub.issuer, iat=int(time.time()) - 86400 - 60)
        old_claims["events"] = {CAEP + "session-revoked": {"initiating_entity": "Duo policy"}}
        old_refusal = refusal(await push(hub, idp.sign(old_claims)))

        assert missing_refusal == "credential-change: missing required claim(s) change_type"
        assert wrong_refusal == (
            "credential-change: data.change_type must be one of ['create', 'revoke', 'update', 'delete']"
        )
        assert (
            status_refusal == "stream-updated: data.status must be one of ['enabled', 'paused', 'disabled']"
        )
        assert old_refusal == "SET is older than the replay window"  # R-SEC-3
        assert await received(hub, stream) == []
        assert (await push(hub, old)).status_code == 202  # the same quirk in a recent SET


async def test_a_strict_issuer_gets_the_refusals_back(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        registration = await trust(hub, idp, strict=True)
        assert registration["strict"] is True
        stream = await receiver_stream(hub)
        cases: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
            (CAEP + "session-revoked", {"initiating_entity": "Duo policy"}, {}, ENUM_REFUSAL),
            (
                CAEP + "credential-change",
                {"credential_type": "password", "change_type": "update", "friendly_name": 42},
                {},
                "credential-change: data.friendly_name must be string",
            ),
            (
                SSF + "verification",
                {"state": None},
                {"subject": {"format": "opaque", "id": "upstream-stream-1"}},
                "verification: data.state must be string",
            ),
        ]

        for event, payload, extra, message in cases:
            assert refusal(await push(hub, upstream_set(idp, hub, event, payload, **extra))) == message

        # A bare-string reason fits the schema (AMB-16): even a strict issuer's is mapped, not refused.
        reason = {"event_timestamp": 1700000000, "reason_admin": "Risky"}
        r = await push(hub, upstream_set(idp, hub, CAEP + "session-revoked", reason))
        assert r.status_code == 202, r.text
        (claims,) = await received(hub, stream)
        assert event_of(claims)[1] == {"event_timestamp": 1700000000, "reason_admin": {"en": "Risky"}}
        assert await metric(hub, TOLERATED, issuer=idp.iss, event="session-revoked", action="dropped") == 0
        # Back to tolerant: the same Duo SET goes through.
        await trust(hub, idp, strict=False)
        duo = upstream_set(idp, hub, CAEP + "session-revoked", {"initiating_entity": "Duo policy"})
        assert (await push(hub, duo)).status_code == 202


@pytest.mark.parametrize("strict", ["yes", 1, None])
async def test_strict_must_be_a_boolean(tmp_path: Path, strict: Any) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        body = {"iss": idp.iss, "jwks_uri": idp.jwks_uri, "strict": strict}
        r = await hub.client.post("/ssf/admin/issuers", json=body, headers=hub.auth("secops", "ssf.admin"))

        assert r.status_code == 400
        assert r.json()["description"] == "strict must be true or false"
