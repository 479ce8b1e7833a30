"""Several hub processes on one store: each upstream is run by exactly one of them, by store
lease, and another takes over with the same stream when that one stops."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from joserfc.jwk import ECKey

from hub.config import load_settings
from hub.runtime.upstreams import build_supervisor
from hub.store import SQLiteStore
from hub.upstreams.configuration import add_upstream
from hub.upstreams.supervisor import UpstreamSupervisor
from tests.support.hub import run_hub
from tests.upstreams.support import FAST, IDP, emit_at_idp, eventually, idp_streams

LEASE = 1.0


class Delivered:
    """Where the replicas hand the SETs they poll (ingest's place in a full hub)."""

    def __init__(self) -> None:
        self.sets: list[str] = []

    async def __call__(self, compact_set: str, /) -> object:
        self.sets.append(compact_set)
        return None


@contextlib.asynccontextmanager
async def replica(
    store: SQLiteStore, data_dir: Path, delivered: Delivered
) -> AsyncIterator[UpstreamSupervisor]:
    settings = load_settings(environ={}, overrides={"data_dir": data_dir, **FAST})
    async with httpx.AsyncClient(timeout=10) as http:
        supervisor = build_supervisor(
            settings,
            store=store,
            http=http,
            token_key=ECKey.generate_key("P-256"),
            sink=delivered,
            lease_ttl=LEASE,
        )
        await supervisor.start()
        try:
            yield supervisor
        finally:
            await supervisor.stop()


async def test_one_replica_runs_an_upstream_and_another_takes_it_over(tmp_path: Path) -> None:
    delivered = Delivered()
    store = SQLiteStore(tmp_path / "hub" / "hub.sqlite3")
    await store.open()
    try:
        async with run_hub(tmp_path / "idp", **IDP) as idp:
            issuer = load_settings(environ={}, overrides={"data_dir": tmp_path / "hub"}).issuer_url
            bearer = idp.token(sub=issuer, scope="ssf.manage", ttl=3600)
            body = {
                "upstream_id": "idp",
                "config_url": idp.issuer,
                "token_source": {"type": "bearer", "token": bearer},
            }
            await add_upstream(store, body, now=0.0)
            async with (
                replica(store, tmp_path / "hub", delivered) as first,
                replica(store, tmp_path / "hub", delivered) as second,
            ):
                stream_id = await verified(store)
                runners = [s for s in (first, second) if s.link("idp") is not None]
                assert len(runners) == 1  # the other one waits for the lease
                await emit_at_idp(idp, txn="one")
                await eventually(lambda: _count(delivered, 1))
                assert len(delivered.sets) == 1  # polled once, not once per replica
                survivor = second if runners[0] is first else first
                await runners[0].stop()  # that replica goes away; its lease is released

                await eventually(lambda: _has_link(survivor))
                await emit_at_idp(idp, txn="two")
                await eventually(lambda: _count(delivered, 2))
                # The survivor picked up the stored state: the same stream, no second one.
                assert [s["stream_id"] for s in await idp_streams(idp)] == [stream_id]
    finally:
        await store.close()


async def verified(store: SQLiteStore) -> str:
    async def check() -> str | None:
        upstream = await store.get_upstream("idp")
        ok = upstream is not None and upstream.state.verified_at is not None
        return upstream.state.stream_id if ok and upstream is not None else None

    found: str = await eventually(check)
    return found


async def _count(delivered: Delivered, n: int) -> bool:
    return len(delivered.sets) >= n


async def _has_link(supervisor: UpstreamSupervisor) -> bool:
    return supervisor.link("idp") is not None
