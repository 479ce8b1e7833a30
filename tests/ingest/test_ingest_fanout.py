"""An identity provider's SET in, one hub-signed SET per interested stream out (AMB-18)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hub.core.dialects import UPSTREAM_CLAIM
from tests.ingest.helpers import ALICE, hub_and_idp, push, received, receiver_stream, trust
from tests.support.hub import CAEP
from tests.support.sets import event_of


async def test_an_accepted_set_is_reissued_by_the_hub_for_every_matching_stream(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        first = await receiver_stream(hub, sub="agent-1")
        second = await receiver_stream(hub, sub="agent-2")
        bystander = await receiver_stream(hub, {"format": "email", "email": "bob@example.com"}, sub="agent-3")
        upstream = idp.claims(hub.issuer, txn="idp-txn-42")

        r = await push(hub, idp.sign(upstream))

        assert r.status_code == 202, r.text
        assert r.content == b""  # R-PUSH-4
        got = [*(await received(hub, first, "agent-1")), *(await received(hub, second, "agent-2"))]
        assert len(got) == 2
        for claims in got:  # verified against the hub's JWKS by received()
            assert claims["iss"] == hub.issuer  # re-issued as the hub (R-SET-13, AMB-18)
            assert claims["jti"] != upstream["jti"]
            assert claims["txn"] == "idp-txn-42"  # the upstream txn reaches the agent
            assert claims[UPSTREAM_CLAIM] == {"iss": idp.iss, "jti": upstream["jti"]}
            assert claims["sub_id"] == ALICE
            assert event_of(claims)[0] == CAEP + "session-revoked"
        assert got[0]["jti"] != got[1]["jti"]
        assert await received(hub, bystander, "agent-3") == []


async def test_without_an_upstream_txn_the_upstream_jti_ties_the_sets_together(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        upstream = idp.claims(hub.issuer)

        assert (await push(hub, idp.sign(upstream))).status_code == 202

        (claims,) = await received(hub, stream)
        assert claims["txn"] == upstream["jti"]
        trace = await hub.client.get(
            f"/ssf/admin/trace/{upstream['jti']}", headers=hub.auth("ops", "ssf.admin")
        )
        assert trace.status_code == 200, trace.text
        assert [s["jti"] for s in trace.json()["sets"]] == [claims["jti"]]


async def test_a_duplicate_is_accepted_and_fans_out_once(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        token = idp.set_for(hub.issuer)

        answers = [await push(hub, token) for _ in range(3)]
        concurrent = await asyncio.gather(*(push(hub, token) for _ in range(5)))

        assert [r.status_code for r in [*answers, *concurrent]] == [202] * 8  # R-SEC-3
        assert len(await received(hub, stream)) == 1


async def test_the_same_jti_from_two_issuers_is_two_sets(tmp_path: Path) -> None:
    from tests.support.idp import run_idp

    async with hub_and_idp(tmp_path) as (hub, idp), run_idp("ES256", path="/other") as other:
        await trust(hub, idp)
        await trust(hub, other, algorithms=["ES256"])
        stream = await receiver_stream(hub)

        for sender in (idp, other):
            assert (
                await push(hub, sender.sign(sender.claims(hub.issuer, jti="shared-jti")))
            ).status_code == 202

        upstreams = sorted(c[UPSTREAM_CLAIM]["iss"] for c in await received(hub, stream))
        assert upstreams == sorted([idp.iss, other.iss])


async def test_a_set_no_stream_wants_is_still_accepted(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)

        r = await push(
            hub, idp.set_for(hub.issuer, subject={"format": "email", "email": "nobody@example.com"})
        )

        assert r.status_code == 202  # R-PUSH-4: uninteresting SETs are acknowledged


async def test_an_idp_key_rotation_is_followed_without_a_restart(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path) as (hub, idp):
        await trust(hub, idp)
        stream = await receiver_stream(hub)
        assert (await push(hub, idp.set_for(hub.issuer))).status_code == 202
        fetches_before = idp.jwks_fetches

        idp.rotate()  # new kid; the old key leaves the JWKS
        r = await push(hub, idp.set_for(hub.issuer))

        assert r.status_code == 202, r.text
        assert idp.jwks_fetches == fetches_before + 1  # refetched once, for the unknown kid
        assert len(await received(hub, stream)) == 2


async def test_unknown_kids_refetch_the_jwks_at_a_bounded_rate(tmp_path: Path) -> None:
    async with hub_and_idp(tmp_path, ingest_jwks_refetch_seconds=60) as (hub, idp):
        await trust(hub, idp)
        assert (await push(hub, idp.set_for(hub.issuer))).status_code == 202
        fetches = idp.jwks_fetches

        made_up = [idp.sign(idp.claims(hub.issuer), header={"kid": f"made-up-{n}"}) for n in range(20)]
        answers = [await push(hub, token) for token in made_up]

        assert idp.jwks_fetches == fetches  # within the interval: no fetch at all (R-SEC-2)
        # Not a verdict on the SET: the sender is told to retry later.
        assert {r.status_code for r in answers} == {503}
        assert all("retry-after" in r.headers for r in answers)
