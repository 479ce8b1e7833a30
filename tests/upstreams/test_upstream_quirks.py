"""Real transmitters deviate from SSF 1.0; the hub's upstream links still get the revocation
through, or say exactly why not (issue #15).

Each test runs a fake transmitter on loopback (``tests/upstreams/transmitter.py``) with the
deviation switched on, and a real hub subscribed to it through the admin API. Where the link
works, alice's session revocation reaches a downstream POLL stream at the hub with the
upstream ``txn``; where it cannot, ``ssf-hub upstreams list``, the admin API and the log show
the peer's reason.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from hub.logs import fields_of
from tests.support.hub import RunningHub, run_hub
from tests.upstreams.support import (
    ALICE,
    FAST,
    SESSION_REVOKED,
    UPSTREAM_CLAIM,
    admin,
    downstream_poll_stream,
    eventually,
    revocations_downstream,
    upstream_record,
    wait_for_health,
)
from tests.upstreams.test_upstreams_cli import cli
from tests.upstreams.transmitter import MANAGEMENT_TOKEN, POLL, PUSH, FakeTransmitter, Quirks, run_transmitter

CREDENTIAL_CHANGE = "https://schemas.openid.net/secevent/caep/event-type/credential-change"


async def subscribe(
    hub: RunningHub,
    transmitter: FakeTransmitter,
    upstream_id: str,
    *,
    config_url: str | None = None,
    **body: Any,
) -> None:
    request = {
        "upstream_id": upstream_id,
        "config_url": config_url or transmitter.url,
        "token_source": {"type": "bearer", "token": MANAGEMENT_TOKEN},
        **body,
    }
    r = await hub.client.post("/ssf/admin/upstreams", json=request, headers=admin(hub))
    assert r.status_code == 201, r.text


def logged(caplog: pytest.LogCaptureFixture, name: str, upstream_id: str) -> list[dict[str, Any]]:
    found = [fields_of(r) for r in caplog.records if getattr(r, "ssf_event", None) == name]
    return [f for f in found if f.get("upstream_id") == upstream_id]


async def listed(data_dir: Path, upstream_id: str) -> str:
    """The upstream's row in ``ssf-hub upstreams list``."""
    done = await cli("list", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    (row,) = [line for line in done.stdout.splitlines() if line.startswith(upstream_id + " ")]
    return row


async def test_a_fastapi_push_only_transmitter_that_wants_aud_and_no_description(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    quirks = Quirks(delivery_methods=(PUSH,), require_aud=True, forbid_description=True)
    data = tmp_path / "hub"
    # A short push-token lifetime makes the link renew it during the test (a PATCH with aud).
    async with run_transmitter(quirks) as tx, run_hub(data, **FAST, upstream_push_token_ttl=6) as hub:
        tx.receiver_aud = hub.issuer
        downstream = await downstream_poll_stream(hub)

        # Strict, the link cannot create its stream, and says why in the peer's own words:
        # FastAPI's {"detail": [...]} without the echoed input (it holds the push token).
        await subscribe(hub, tx, "strict")
        state = await wait_for_health(hub, "strict", "failing")
        reason = "answered 422 body.aud: Field required; body.description: Extra inputs are not permitted"
        assert state["last_error"] == f"{tx.url}/streams {reason}"
        assert "Bearer" not in state["last_error"] and "eyJ" not in state["last_error"]
        assert state["delivery"] == "push"  # the only method the metadata lists
        assert reason in (await listed(data, "strict"))
        assert any(reason in (e["error"] or "") for e in logged(caplog, "upstream_link_state", "strict"))

        # With aud sent and description left out, the link works.
        await subscribe(
            hub,
            tx,
            "adapted",
            compatibility={"create_fields": {"aud": hub.issuer}, "omit_fields": ["description"]},
        )
        state = await wait_for_health(hub, "adapted", "healthy")
        remote = tx.streams[state["stream_id"]]
        assert remote.delivery["method"] == PUSH and remote.description is None and remote.aud == hub.issuer
        assert {"create_fields", "omit_fields"} <= {
            e["option"] for e in logged(caplog, "upstream_compat_used", "adapted")
        }

        # The token renewal is a PATCH with aud too, which the transmitter takes.
        await eventually(lambda: _true(("PATCH", 200) in tx.requests))
        assert (await upstream_record(hub, "adapted"))["state"]["stream_id"] == state["stream_id"]

        tx.emit(SESSION_REVOKED, ALICE, txn="txn-fastapi")
        claims = await revocations_downstream(hub, downstream, "txn-fastapi")
        assert claims[UPSTREAM_CLAIM]["iss"] == tx.issuer and claims["iss"] == hub.issuer


@pytest.mark.parametrize("issuer", ["metadata-url", "fixed"])
async def test_an_issuer_unlike_the_metadata_address_needs_expected_issuer(
    tmp_path: Path, issuer: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    if issuer == "metadata-url":
        quirks = Quirks(issuer_is_metadata_url=True)
    else:
        quirks = Quirks(issuer="https://idp.example.test/ssf")
    async with run_transmitter(quirks) as tx, run_hub(tmp_path / "hub", **FAST) as hub:
        tx.receiver_aud = hub.issuer
        downstream = await downstream_poll_stream(hub)

        await subscribe(hub, tx, "strict", config_url=tx.metadata_url)
        state = await wait_for_health(hub, "strict", "failing")
        assert state["last_error"] == (
            f"DiscoveryError: metadata at {tx.metadata_url} names issuer {tx.issuer!r}, not {tx.url!r} "
            "(SSF 1.0 §7.2, R-DISC-4); if you trust this transmitter, set its expected_issuer to "
            f"{tx.issuer!r}"
        )
        assert not tx.streams  # nothing was created at an unverified issuer

        await subscribe(
            hub, tx, "trusted", config_url=tx.metadata_url, compatibility={"expected_issuer": tx.issuer}
        )
        state = await wait_for_health(hub, "trusted", "healthy")
        assert state["issuer"] == tx.issuer
        assert state["delivery"] == "poll"  # both methods listed: poll, as before
        (used,) = [
            e for e in logged(caplog, "upstream_compat_used", "trusted") if e["option"] == "expected_issuer"
        ]
        assert used["issuer"] == tx.issuer and used["served_from"] == tx.url

        tx.emit(SESSION_REVOKED, ALICE, txn=f"txn-issuer-{issuer}")
        claims = await revocations_downstream(hub, downstream, f"txn-issuer-{issuer}")
        assert claims[UPSTREAM_CLAIM]["iss"] == tx.issuer


@pytest.mark.parametrize("listed_in_metadata", [False, True])
async def test_event_types_the_transmitter_refuses_are_dropped_from_the_request(
    tmp_path: Path, listed_in_metadata: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    quirks = Quirks(
        events_supported=(SESSION_REVOKED, CREDENTIAL_CHANGE),
        events_supported_in_metadata=listed_in_metadata,
        refuse_unsupported_events=True,
    )
    async with run_transmitter(quirks) as tx, run_hub(tmp_path / "hub", **FAST) as hub:
        tx.receiver_aud = hub.issuer
        downstream = await downstream_poll_stream(hub)
        await subscribe(hub, tx, "idp")  # no events given: the revocation-relevant set
        state = await wait_for_health(hub, "idp", "healthy")
        assert tx.streams[state["stream_id"]].events_requested == [SESSION_REVOKED, CREDENTIAL_CHANGE]

        if listed_in_metadata:  # intersected before asking: nothing refused
            assert tx.requests == [("POST", 201)]
            (adapted,) = logged(caplog, "upstream_adapted", "idp")
            assert adapted["kind"] == "events_unsupported"
        else:  # refused once with 400 naming them, then asked again without them
            assert tx.requests == [("POST", 400), ("POST", 201)]
            (adapted,) = logged(caplog, "upstream_adapted", "idp")
            assert adapted["kind"] == "events_refused" and SESSION_REVOKED not in adapted["refused"]
            assert len(adapted["refused"]) == 10
        assert state["adaptations"] == [adapted["note"]]

        tx.emit(SESSION_REVOKED, ALICE, txn="txn-events")
        await revocations_downstream(hub, downstream, "txn-events")


async def test_a_push_token_renewal_the_transmitter_ignores_replaces_the_stream(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    quirks = Quirks(delivery_methods=(PUSH,), ignore_delivery_patch=True)
    async with (
        run_transmitter(quirks) as tx,
        run_hub(tmp_path / "hub", **FAST, upstream_push_token_ttl=8) as hub,
    ):
        tx.receiver_aud = hub.issuer
        downstream = await downstream_poll_stream(hub)
        await subscribe(hub, tx, "idp")
        first = (await wait_for_health(hub, "idp", "healthy"))["stream_id"]

        async def replaced() -> dict[str, Any] | None:
            state: dict[str, Any] = (await upstream_record(hub, "idp"))["state"]
            return state if state["health"] == "healthy" and state["stream_id"] != first else None

        state = await eventually(replaced, timeout=30)
        assert ("PATCH", 200) in tx.requests  # answered, but the token stayed the old one
        assert first not in tx.streams  # the old stream was deleted, the new one verified
        (adapted, *_) = logged(caplog, "upstream_adapted", "idp")
        assert adapted["kind"] == "renewal_ignored" and adapted["stream_id"] == first
        assert adapted["note"] in state["adaptations"]
        metrics = await hub.client.get("/metrics", headers=hub.auth("prometheus", "ssf.metrics"))
        assert 'ssf_hub_upstream_adaptations_total{kind="renewal_ignored"}' in metrics.text

        tx.emit(SESSION_REVOKED, ALICE, txn="txn-renewal")
        await revocations_downstream(hub, downstream, "txn-renewal")
        assert 401 not in tx.pushes

        # The next renewal replaces the stream straight away: PATCH is not tried again.
        second = state["stream_id"]

        async def replaced_again() -> dict[str, Any] | None:
            state: dict[str, Any] = (await upstream_record(hub, "idp"))["state"]
            return (
                state if state["health"] == "healthy" and state["stream_id"] not in (first, second) else None
            )

        await eventually(replaced_again, timeout=30)
        assert tx.requests.count(("PATCH", 200)) == 1


async def test_renewal_by_replace_for_a_transmitter_that_ignores_patch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    quirks = Quirks(delivery_methods=(PUSH,), ignore_delivery_patch=True)
    async with (
        run_transmitter(quirks) as tx,
        run_hub(tmp_path / "hub", **FAST, upstream_push_token_ttl=6) as hub,
    ):
        tx.receiver_aud = hub.issuer
        downstream = await downstream_poll_stream(hub)
        await subscribe(hub, tx, "idp", compatibility={"renewal": "replace"})
        stream_id = (await wait_for_health(hub, "idp", "healthy"))["stream_id"]

        await eventually(lambda: _true(("PUT", 200) in tx.requests))  # the whole configuration
        assert ("PATCH", 200) not in tx.requests
        assert (await upstream_record(hub, "idp"))["state"]["stream_id"] == stream_id  # it took
        assert not logged(caplog, "upstream_adapted", "idp")
        (used,) = [e for e in logged(caplog, "upstream_compat_used", "idp") if e["option"] == "renewal"]
        assert used["value"] == "replace"

        tx.emit(SESSION_REVOKED, ALICE, txn="txn-replace")
        await revocations_downstream(hub, downstream, "txn-replace")


async def test_a_refused_re_enable_marks_the_link_degraded_with_the_peer_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    data = tmp_path / "hub"
    async with run_transmitter(Quirks(no_status_post=True)) as tx, run_hub(data, **FAST) as hub:
        tx.receiver_aud = hub.issuer
        await subscribe(hub, tx, "idp", delivery="poll")
        stream_id = (await wait_for_health(hub, "idp", "healthy"))["stream_id"]

        tx.disable(stream_id, "maintenance")
        state = await wait_for_health(hub, "idp", "degraded")
        assert state["remote_status"] == "disabled" and state["remote_status_reason"] == "maintenance"
        assert state["last_error"] == (
            f"stream {stream_id} is disabled at the transmitter (maintenance) and it refused to enable "
            f"it: {tx.url}/status answered 405 Method Not Allowed"
        )
        row = await listed(data, "idp")
        assert " degraded " in row and "answered 405 Method Not Allowed" in row
        (refused,) = logged(caplog, "upstream_reenable_refused", "idp")  # once, not at every check
        assert refused["http_status"] == 405 and refused["remote_status"] == "disabled"

        tx.streams[stream_id].status = "enabled"  # the transmitter's operator turned it back on
        state = await wait_for_health(hub, "idp", "healthy")
        assert state["last_error"] is None and state["remote_status"] == "enabled"


async def test_null_optional_strings_from_the_transmitter_are_read_as_absent(tmp_path: Path) -> None:
    async with run_transmitter(Quirks(nulls=True)) as tx, run_hub(tmp_path / "hub", **FAST) as hub:
        tx.receiver_aud = hub.issuer
        downstream = await downstream_poll_stream(hub)
        await subscribe(hub, tx, "idp")
        state = await wait_for_health(hub, "idp", "healthy")
        assert state["delivery"] == "poll"  # delivery_methods_supported: null lists nothing
        assert tx.streams[state["stream_id"]].delivery["method"] == POLL

        tx.disable(state["stream_id"], None)  # the status reads back "reason": null
        await eventually(lambda: _true(tx.streams[state["stream_id"]].status == "enabled"))

        tx.emit(SESSION_REVOKED, ALICE, txn="txn-nulls")
        await revocations_downstream(hub, downstream, "txn-nulls")


async def test_a_push_token_in_endpoint_url_token_for_transmitters_that_want_it(tmp_path: Path) -> None:
    quirks = Quirks(delivery_methods=(PUSH,), token_member="endpoint_url_token")
    async with run_transmitter(quirks) as tx, run_hub(tmp_path / "hub", **FAST) as hub:
        tx.receiver_aud = hub.issuer
        downstream = await downstream_poll_stream(hub)

        await subscribe(hub, tx, "strict")
        state = await wait_for_health(hub, "strict", "failing")
        assert state["last_error"].endswith(
            "answered 400 invalid_request: delivery.endpoint_url_token is required"
        )

        await subscribe(hub, tx, "idp", compatibility={"push_auth": "endpoint_url_token"})
        state = await wait_for_health(hub, "idp", "healthy")
        assert "authorization_header" not in tx.streams[state["stream_id"]].delivery

        tx.emit(SESSION_REVOKED, ALICE, txn="txn-url-token")
        await revocations_downstream(hub, downstream, "txn-url-token")
        assert tx.pushes and set(tx.pushes) == {202}


async def _true(value: bool) -> bool:
    return value
