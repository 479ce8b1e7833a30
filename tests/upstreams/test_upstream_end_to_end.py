"""Upstream subscriptions end to end (issue #4): the hub subscribes to an identity provider's
SSF transmitter and re-issues what it receives to its own downstream streams.

The identity provider is a second, real ssf-hub on loopback with its own keys (``idp``);
the hub under test (``hub``) subscribes to it through the admin API, by poll (RFC 8936) and by
push (RFC 8935, to its own ``/ssf/ingest``), and a downstream receiver polls the hub under test
and verifies every SET against the hub's JWKS.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey

from tests.receivers.support import FakeAuthServer, serve_auth_server
from tests.support.hub import RunningHub, free_port, run_hub
from tests.support.sets import event_of
from tests.upstreams.support import (
    ALICE,
    FAST,
    IDP,
    SESSION_REVOKED,
    emit_at_idp,
    eventually,
    idp_streams,
)

UPSTREAM_CLAIM = "urn:ssf-hub:upstream"


async def add_upstream(hub: RunningHub, body: dict[str, Any]) -> dict[str, Any]:
    r = await hub.client.post("/ssf/admin/upstreams", json=body, headers=hub.auth("secops", "ssf.admin"))
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


async def upstream_state(hub: RunningHub, upstream_id: str) -> dict[str, Any]:
    r = await hub.client.get(f"/ssf/admin/upstreams/{upstream_id}", headers=hub.auth("secops", "ssf.admin"))
    assert r.status_code == 200, r.text
    state: dict[str, Any] = r.json()["state"]
    return state


async def healthy(hub: RunningHub, upstream_id: str, *, not_stream: str | None = None) -> dict[str, Any]:
    """Wait until the upstream is verified and healthy (on a stream other than ``not_stream``)."""

    async def check() -> dict[str, Any] | None:
        state = await upstream_state(hub, upstream_id)
        ok = state["health"] == "healthy" and state["stream_id"] not in (None, not_stream)
        return state if ok else None

    found: dict[str, Any] = await eventually(check)
    return found


async def downstream_receives(hub: RunningHub, stream: dict[str, Any]) -> list[dict[str, Any]]:
    """Poll the hub under test until a session-revoked SET arrives; every SET is verified."""

    async def check() -> list[dict[str, Any]]:
        claims = await hub.poll_verified(stream, sub="agent-1")
        return [c for c in claims if event_of(c)[0] == SESSION_REVOKED]

    found: list[dict[str, Any]] = await eventually(check)
    return found


async def downstream_stream(hub: RunningHub) -> dict[str, Any]:
    stream = await hub.create_stream("agent-1", events_requested=[SESSION_REVOKED])
    await hub.add_subject(stream["stream_id"], ALICE, sub="agent-1")
    return stream


@pytest.fixture
async def idp(tmp_path: Path) -> AsyncIterator[RunningHub]:
    """The identity provider's transmitter: its own data dir and keys; every subject on every
    stream (as IdPs commonly do); push allowed to loopback, where the hub under test listens."""
    async with run_hub(tmp_path / "idp", **IDP) as running:
        yield running


async def test_a_poll_subscription_delivers_an_idp_event_to_a_downstream_stream(
    tmp_path: Path, idp: RunningHub
) -> None:
    async with run_hub(tmp_path / "hub", **FAST) as hub:
        stream = await downstream_stream(hub)
        # The IdP's streams belong to the token's sub, and their aud is it: the hub's issuer.
        bearer = idp.token(sub=hub.issuer, scope="ssf.manage", ttl=3600)
        added = await add_upstream(
            hub,
            {
                "upstream_id": "idp",
                "config_url": idp.issuer,
                "delivery": "poll",
                "events_requested": ["session-revoked"],
                "token_source": {"type": "bearer", "token": bearer},
            },
        )
        assert added["token_source"] == {"type": "bearer"}  # the token is not shown back
        state = await healthy(hub, "idp")  # discovered, stream created, verification came back
        assert state["issuer"] == idp.issuer and state["verified_at"] is not None

        remote = await idp.client.get(
            "/ssf/stream", params={"stream_id": state["stream_id"]}, headers=idp.auth(hub.issuer)
        )
        assert remote.status_code == 200, remote.text
        assert remote.json()["delivery"]["method"] == "urn:ietf:rfc:8936"
        assert remote.json()["events_delivered"] == [SESSION_REVOKED]

        await emit_at_idp(idp, txn="idp-txn-poll")
        (claims,) = await downstream_receives(hub, stream)
        assert claims["iss"] == hub.issuer and claims["txn"] == "idp-txn-poll"  # R-TXN-11
        assert claims[UPSTREAM_CLAIM]["iss"] == idp.issuer
        assert claims["sub_id"] == ALICE

        # The hub acknowledged what it polled: nothing stays queued for it at the IdP.
        async def acknowledged() -> bool:
            return [s["queued"] for s in await idp_streams(idp)] == [0]

        await eventually(acknowledged)
        last_event = (await upstream_state(hub, "idp"))["last_event_at"]
        assert last_event is not None and last_event >= state["verified_at"] - 1


async def test_a_push_subscription_with_client_credentials_delivers_end_to_end(tmp_path: Path) -> None:
    client_key = ECKey.generate_key("P-256", parameters={"kid": "hub-client"})
    key_file = tmp_path / "hub-client.pem"
    key_file.write_bytes(client_key.as_pem(private=True))
    async with serve_auth_server(FakeAuthServer()) as auth:
        idp_trusts = [{"issuer": auth.issuer, "jwks_uri": auth.issuer + "/jwks", "audience": "ssf-hub"}]
        async with (
            run_hub(
                tmp_path / "idp",
                default_subjects="ALL",
                allow_private_endpoints=True,
                external_issuers=idp_trusts,
            ) as idp,
            run_hub(tmp_path / "hub", **FAST) as hub,
        ):
            # The hub is an OAuth client of the IdP, known by its public key (RFC 7523).
            auth.clients[hub.issuer] = ECKey.import_key(client_key.as_dict(private=False))
            stream = await downstream_stream(hub)
            await add_upstream(
                hub,
                {
                    "upstream_id": "idp",
                    "config_url": idp.issuer + "/.well-known/ssf-configuration",
                    "delivery": "push",
                    "token_source": {
                        "type": "client_credentials",
                        "token_endpoint": auth.issuer + "/token",
                        "client_id": hub.issuer,
                        "private_key_file": str(key_file),
                    },
                },
            )
            # Verification here travels IdP -> push -> the hub's /ssf/ingest -> the link.
            state = await healthy(hub, "idp")
            assert auth.token_requests and all(
                r["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                for r in auth.token_requests
            )
            remote = await idp_streams(idp)
            assert [s["stream_id"] for s in remote] == [state["stream_id"]]
            assert remote[0]["delivery"]["endpoint_url"] == hub.issuer + "/ssf/ingest"

            await emit_at_idp(idp, txn="idp-txn-push")
            (claims,) = await downstream_receives(hub, stream)
            assert claims["txn"] == "idp-txn-push" and claims[UPSTREAM_CLAIM]["iss"] == idp.issuer

            async def event_noted() -> bool:  # pushed events count as the upstream's last event
                noted = await upstream_state(hub, "idp")
                return bool(noted["last_event_at"] and noted["last_event_at"] > noted["verified_at"])

            await eventually(event_noted)


async def test_a_stream_deleted_at_the_idp_is_created_again(tmp_path: Path, idp: RunningHub) -> None:
    async with run_hub(tmp_path / "hub", **FAST) as hub:
        stream = await downstream_stream(hub)
        bearer = idp.token(sub=hub.issuer, scope="ssf.manage", ttl=3600)
        await add_upstream(
            hub,
            {
                "upstream_id": "idp",
                "config_url": idp.issuer,
                "delivery": "poll",
                "token_source": {"type": "bearer", "token": bearer},
            },
        )
        first = await healthy(hub, "idp")
        gone = await idp.client.delete(
            "/ssf/stream",
            params={"stream_id": first["stream_id"]},
            headers={"Authorization": f"Bearer {bearer}"},
        )
        assert gone.status_code == 204, gone.text

        second = await healthy(hub, "idp", not_stream=first["stream_id"])
        listed = await idp.client.get("/ssf/stream", headers={"Authorization": f"Bearer {bearer}"})
        assert [s["stream_id"] for s in listed.json()] == [second["stream_id"]]

        await emit_at_idp(idp, txn="after-recreate")
        (claims,) = await downstream_receives(hub, stream)
        assert claims["txn"] == "after-recreate"


async def test_removing_an_upstream_deletes_its_stream_at_the_idp(tmp_path: Path, idp: RunningHub) -> None:
    async with run_hub(tmp_path / "hub", **FAST) as hub:
        bearer = idp.token(sub=hub.issuer, scope="ssf.manage", ttl=3600)
        await add_upstream(
            hub,
            {
                "config_url": idp.issuer,
                "delivery": "poll",
                "token_source": {"type": "bearer", "token": bearer},
            },
        )
        await healthy(hub, "127.0.0.1")  # named after the transmitter's host
        r = await hub.client.delete("/ssf/admin/upstreams/127.0.0.1", headers=hub.auth("secops", "ssf.admin"))
        assert r.status_code == 204, r.text

        async def no_streams_left() -> bool:
            listed = await idp.client.get("/ssf/stream", headers={"Authorization": f"Bearer {bearer}"})
            return bool(listed.json() == [])

        await eventually(no_streams_left)
        r = await hub.client.get("/ssf/admin/upstreams/127.0.0.1", headers=hub.auth("secops", "ssf.admin"))
        assert r.status_code == 404 and r.json()["err"] == "not_found"


async def test_an_unreachable_upstream_is_reported_failing_with_its_error(tmp_path: Path) -> None:
    async with run_hub(tmp_path / "hub", **FAST) as hub:
        await add_upstream(
            hub,
            {
                "upstream_id": "down",
                "config_url": "http://127.0.0.1:9/",  # discard port: nothing listens
                "token_source": {"type": "bearer", "token": "t"},
            },
        )

        async def failing() -> dict[str, Any] | None:
            state = await upstream_state(hub, "down")
            return state if state["health"] == "failing" else None

        state = await eventually(failing)
        assert "no transmitter metadata" in state["last_error"] and state["failures"] >= 1


async def test_a_restarted_hub_keeps_its_stream_at_the_idp(tmp_path: Path, idp: RunningHub) -> None:
    port = free_port()  # the same issuer URL across the restart: the stream's aud names it
    async with run_hub(tmp_path / "hub", port=port, **FAST) as hub:
        stream = await downstream_stream(hub)
        bearer = idp.token(sub=hub.issuer, scope="ssf.manage", ttl=3600)
        await add_upstream(
            hub,
            {
                "upstream_id": "idp",
                "config_url": idp.issuer,
                "token_source": {"type": "bearer", "token": bearer},
            },
        )
        before = await healthy(hub, "idp")
    await emit_at_idp(idp, txn="while-down")  # held at the IdP until the hub polls again
    async with run_hub(tmp_path / "hub", port=port, **FAST) as hub:

        async def verified_again() -> dict[str, Any] | None:
            state = await upstream_state(hub, "idp")
            return state if state["verified_at"] != before["verified_at"] else None

        after = await eventually(verified_again)
        assert after["stream_id"] == before["stream_id"]
        assert [s["stream_id"] for s in await idp_streams(idp)] == [before["stream_id"]]
        await emit_at_idp(idp, txn="after-restart")

        async def both_arrived() -> bool:
            claims = await hub.poll_verified(stream, sub="agent-1")  # unacknowledged: sent again
            return {c["txn"] for c in claims} == {"while-down", "after-restart"}

        await eventually(both_arrived)


async def test_a_stream_the_idp_pauses_is_enabled_again_on_its_stream_updated_event(
    tmp_path: Path, idp: RunningHub
) -> None:
    # Checks are far apart here: only the stream-updated event can explain a prompt reaction.
    async with run_hub(tmp_path / "hub", **{**FAST, "upstream_check_interval": 600}) as hub:
        bearer = idp.token(sub=hub.issuer, scope="ssf.manage", ttl=3600)
        await add_upstream(
            hub,
            {
                "upstream_id": "idp",
                "config_url": idp.issuer,
                "token_source": {"type": "bearer", "token": bearer},
            },
        )
        state = await healthy(hub, "idp")
        r = await idp.client.post(
            f"/ssf/admin/streams/{state['stream_id']}/status",
            json={"status": "paused", "reason": "maintenance"},
            headers=idp.auth("idp-operator", "ssf.admin"),
        )
        assert r.status_code == 200, r.text

        async def enabled_again() -> bool:
            streams = await idp_streams(idp)
            recorded = await upstream_state(hub, "idp")
            return bool(streams[0]["status"] == "enabled" and recorded["remote_status"] == "enabled")

        await eventually(enabled_again, timeout=10)


async def test_a_stream_for_another_audience_is_reported_and_not_created_again(
    tmp_path: Path, idp: RunningHub
) -> None:
    async with run_hub(tmp_path / "hub", **FAST) as hub:
        # The IdP makes the stream's aud the token's sub: not the hub's issuer URL here.
        bearer = idp.token(sub="someone-else", scope="ssf.manage", ttl=3600)
        await add_upstream(
            hub,
            {
                "upstream_id": "idp",
                "config_url": idp.issuer,
                "token_source": {"type": "bearer", "token": bearer},
            },
        )

        async def failed_twice() -> dict[str, Any] | None:
            state = await upstream_state(hub, "idp")
            return state if state["failures"] >= 2 else None

        state = await eventually(failed_twice)
        assert state["health"] == "failing" and "aud" in state["last_error"]
        assert hub.issuer in state["last_error"]
        assert len(await idp_streams(idp)) == 1  # retried with the same stream
