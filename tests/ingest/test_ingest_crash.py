"""``kill -9`` of the hub while SETs stream in: every SET answered 202 is queued exactly once
after a restart, and the sender's retries of the rest neither lose nor double anything."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.auth.tokens import mint_local_token
from hub.core.dialects import UPSTREAM_CLAIM
from hub.keys.ring import load_or_create_token_key
from tests.ingest.helpers import ALICE, EVENTS, SET_MEDIA_TYPE
from tests.support.hub import free_port
from tests.support.idp import run_idp
from tests.support.process import serve_process
from tests.support.sets import verify_set

SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")
SETS = 240


@pytest.mark.slow
async def test_a_crash_neither_loses_nor_doubles_an_accepted_set(tmp_path: Path) -> None:
    data_dir, log, port = tmp_path / "data", tmp_path / "hub.log", free_port()
    base = f"http://127.0.0.1:{port}"
    key = load_or_create_token_key(data_dir)
    token = mint_local_token(key, sub="idp", scope="ssf.ingest ssf.manage", ttl=600, now=time.time())
    auth = {"Authorization": f"Bearer {token}"}
    async with run_idp("ES256") as idp:
        add = [
            SSF_HUB,
            "issuers",
            "add",
            "--data-dir",
            str(data_dir),
            "--iss",
            idp.iss,
            "--jwks-uri",
            idp.jwks_uri,
        ]
        assert subprocess.run(add, capture_output=True, check=False).returncode == 0
        sets = {f"up-{n}": idp.sign(idp.claims(base, jti=f"up-{n}")) for n in range(SETS)}
        accepted: set[str] = set()

        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as client:
            async with serve_process(data_dir, port, log) as hub:
                r = await client.post("/ssf/stream", json={"events_requested": EVENTS})
                stream = r.json()
                r = await client.post(
                    "/ssf/subjects:add", json={"stream_id": stream["stream_id"], "subject": ALICE}
                )
                assert r.status_code == 200, r.text
                pending = iter(sets.items())

                async def sender() -> None:
                    for jti, body in pending:
                        try:
                            r = await client.post(
                                "/ssf/ingest", content=body, headers={"Content-Type": SET_MEDIA_TYPE}
                            )
                        except httpx.HTTPError:
                            return
                        if r.status_code == 202:
                            accepted.add(jti)
                        if len(accepted) == SETS // 3:
                            hub.send_signal(signal.SIGKILL)  # mid-stream, with requests in flight

                await asyncio.gather(*(sender() for _ in range(8)))
                await asyncio.to_thread(hub.wait)
            assert SETS // 3 <= len(accepted) < SETS

            async with serve_process(data_dir, port, log):
                after_crash = await upstream_jtis(client, stream)
                assert set(accepted) <= set(after_crash)  # a 202 is never lost
                assert max(Counter(after_crash).values()) == 1  # nor doubled

                for body in sets.values():  # the sender retries everything it is unsure of
                    r = await client.post(
                        "/ssf/ingest", content=body, headers={"Content-Type": SET_MEDIA_TYPE}
                    )
                    assert r.status_code == 202, r.text
                every = await upstream_jtis(client, stream)
                assert Counter(every) == Counter(list(sets))  # each upstream SET queued exactly once


async def upstream_jtis(client: httpx.AsyncClient, stream: dict[str, Any]) -> list[str]:
    """The upstream jti behind every SET queued on ``stream`` (verified, not acknowledged)."""
    r = await client.post(
        stream["delivery"]["endpoint_url"], json={"returnImmediately": True, "maxEvents": 1000}
    )
    assert r.status_code == 200, r.text
    jwks = (await client.get("/ssf/jwks.json")).json()
    claims = [
        verify_set(t, jwks, iss=str(client.base_url).rstrip("/"), aud=str(stream["aud"]))
        for t in r.json()["sets"].values()
    ]
    return [c[UPSTREAM_CLAIM]["jti"] for c in claims]
