"""What older and vendor IdPs send is accepted and re-issued as clean SSF 1.0."""

from __future__ import annotations

from pathlib import Path

from hub.core.dialects import InboundSet
from tests.ingest.helpers import ALICE, hub_and_idp, push, received, receiver_stream, trust
from tests.support.hub import CAEP, RISC, SSF
from tests.support.sets import event_of

LEGACY_SSE = "https://schemas.openid.net/secevent/sse/event-type/"


async def test_a_legacy_set_is_reissued_in_ssf_1_0_form(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub, {"format": "phone_number", "phone_number": "+12065550100"})
        # SSE ID1 / Google RISC style: no sub_id, the subject inside the event with subject_type
        # and the old "phone" format, a millisecond timestamp, a bare-string reason.
        legacy = idp.claims(hub.issuer)
        del legacy["sub_id"]
        legacy["events"] = {
            CAEP + "session-revoked": {
                "subject": {"subject_type": "phone", "phone_number": "+12065550100"},
                "event_timestamp": 1615304991643,
                "reason_admin": "Policy violation",
            }
        }

        r = await push(hub, idp.sign(legacy))

        assert r.status_code == 202, r.text
        (claims,) = await received(hub, stream)  # verify_set checks the SSF 1.0 shape
        uri, event = event_of(claims)
        assert uri == CAEP + "session-revoked"
        assert claims["sub_id"] == {"format": "phone_number", "phone_number": "+12065550100"}  # AMB-2/3/4
        assert event == {"event_timestamp": 1615304991, "reason_admin": {"en": "Policy violation"}}  # AMB-16


async def test_risc_sessions_revoked_goes_out_as_caep_session_revoked(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)

        r = await push(hub, idp.set_for(hub.issuer, event=RISC + "sessions-revoked"))

        assert r.status_code == 202, r.text
        (claims,) = await received(hub, stream)
        assert event_of(claims)[0] == CAEP + "session-revoked"  # R-RISC-9


async def test_alternative_names_of_one_event_become_one_set(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        both = idp.claims(hub.issuer)
        both["events"] = {
            RISC + "sessions-revoked": {"event_timestamp": 1700000000, "initiating_entity": "admin"},
            CAEP + "session-revoked": {"event_timestamp": 1700000001},
        }

        assert (await push(hub, idp.sign(both))).status_code == 202

        (claims,) = await received(hub, stream)  # AMB-17: one unit, one SET
        uri, event = event_of(claims)
        assert uri == CAEP + "session-revoked"
        assert event == {"event_timestamp": 1700000001, "initiating_entity": "admin"}  # current name wins


async def test_distinct_events_of_one_set_are_processed_as_one_unit(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        upstream = idp.claims(hub.issuer, txn="incident-7")
        upstream["events"] = {
            CAEP + "session-revoked": {},
            RISC + "account-disabled": {"reason": "hijacking"},
            "https://vendor.example/event/unknown": {"x": 1},
        }

        assert (await push(hub, idp.sign(upstream))).status_code == 202
        assert (await push(hub, idp.sign(upstream))).status_code == 202  # the unit is de-duplicated whole

        got = await received(hub, stream)
        assert sorted(event_of(c)[0] for c in got) == [CAEP + "session-revoked", RISC + "account-disabled"]
        assert {c["txn"] for c in got} == {"incident-7"}


async def test_upstream_stream_events_are_accepted_but_not_fanned_out(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        seen: list[tuple[str, str]] = []

        async def listener(inbound: InboundSet) -> None:
            seen.append((inbound.iss, inbound.events[0].uri))

        assert hub.app is not None
        hub.app.state.hub.ingest.on_control_event(listener)
        verification = idp.claims(
            hub.issuer, event=LEGACY_SSE + "verification", subject={"format": "opaque", "id": "s1"}
        )
        verification["events"] = {LEGACY_SSE + "verification": {"state": "abc"}}

        assert (await push(hub, idp.sign(verification))).status_code == 202

        assert seen == [(idp.iss, SSF + "verification")]  # AMB-6: the legacy URI is read as SSF 1.0
        assert await received(hub, stream) == []


async def test_alice_subject_formats_old_and_new_reach_the_same_stream(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        old_style = idp.claims(hub.issuer, subject={"subject_type": "email", "email": "alice@EXAMPLE.com"})

        assert (await push(hub, idp.sign(old_style))).status_code == 202

        (claims,) = await received(hub, stream)
        assert claims["sub_id"]["format"] == "email"
        assert "subject_type" not in claims["sub_id"]
        assert claims["sub_id"]["email"].lower() == ALICE["email"]
