"""Replicas on one Redis share their keys: one signing ring, one token key, and a rotation
made by one replica reaches the others while the old key is still published (R-SET-16)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import hub.runtime.jobs
from hub.config import load_settings
from hub.keys.rotation import rotate_signing_keys
from hub.keys.storage import SharedKeyStorage
from hub.store import RedisStore
from tests.support.hub import RunningHub, free_port, run_hub
from tests.support.sets import verify_set

ALICE = {"format": "email", "email": "alice@example.com"}
ISSUER = "https://ssf-hub.example"
SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")


def path_of(url: str) -> str:
    """The issuer's URLs name the load balancer; each replica is asked directly."""
    return urlsplit(url).path


async def served_jwks(replica: RunningHub) -> dict[str, Any]:
    r = await replica.client.get(path_of((await replica.metadata())["jwks_uri"]))
    assert r.status_code == 200, r.text
    jwks: dict[str, Any] = r.json()
    return jwks


async def polled(replica: RunningHub, stream: dict[str, Any]) -> list[str]:
    r = await replica.client.post(
        path_of(stream["delivery"]["endpoint_url"]), json={"returnImmediately": True}, headers=replica.auth()
    )
    assert r.status_code == 200, r.text
    return list(r.json()["sets"].values())


def kid_of(token: str) -> str:
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    kid: str = header["kid"]
    return kid


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    return subprocess.run([SSF_HUB, *args], capture_output=True, text=True, timeout=60, env=env)


@contextlib.asynccontextmanager
async def two_replicas(tmp_path: Path, redis_url: str) -> AsyncIterator[list[RunningHub]]:
    """Two hubs, each with its own data dir, started at the same moment on one Redis, with
    the one issuer URL of the load balancer in front of them."""
    async with contextlib.AsyncExitStack() as stack:
        yield await asyncio.gather(
            *(
                stack.enter_async_context(
                    run_hub(tmp_path / name, store="redis", redis_url=redis_url, issuer=ISSUER)
                )
                for name in ("a", "b")
            )
        )


async def test_replicas_started_at_once_agree_on_one_ring_and_one_token_key(
    tmp_path: Path, redis_url: str
) -> None:
    async with two_replicas(tmp_path, redis_url) as (a, b):
        assert await served_jwks(a) == await served_jwks(b)
        assert len((await served_jwks(a))["keys"]) == 1
        # A token minted with A's key manages streams on B: one local issuer for the cluster.
        created = await b.client.post("/ssf/stream", json={}, headers=a.auth("receiver-1"))
        assert created.status_code == 201, created.text
        listed = await a.client.get("/ssf/stream", headers=b.auth("receiver-1"))
        assert [s["stream_id"] for s in listed.json()] == [created.json()["stream_id"]]


async def test_a_rotation_on_one_replica_reaches_the_other(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub.runtime.jobs, "RING_RELOAD_SECONDS", 0.2)
    async with two_replicas(tmp_path, redis_url) as (a, b):
        stream = await a.create_stream()
        await a.add_subject(stream["stream_id"], ALICE)
        old_kid = (await served_jwks(b))["keys"][0]["kid"]

        rotated = await a.client.post("/ssf/admin/keys/rotate", headers=a.auth("operator", "ssf.admin"))
        new_kid = rotated.json()["active_kid"]
        await until_jwks_has(b, new_kid)

        await b.emit("session-revoked", ALICE)  # signed on B, after B took the rotation
        (token,) = await polled(a, stream)
        assert kid_of(token) == new_kid
        jwks = await served_jwks(b)
        assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}  # the old key stays published
        verify_set(token, jwks, iss=b.issuer, aud=stream["aud"])


async def until_jwks_has(running: RunningHub, kid: str, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while kid not in {k["kid"] for k in (await served_jwks(running))["keys"]}:
            await asyncio.sleep(0.05)


async def test_concurrent_first_starts_store_one_ring(redis_url: str) -> None:
    stores = [RedisStore(redis_url) for _ in range(5)]
    for store in stores:
        await store.open()
    try:
        storages = [SharedKeyStorage(store) for store in stores]
        rings = await asyncio.gather(*(s.load_ring("ES256", 1000.0) for s in storages))
        token_keys = await asyncio.gather(*(s.token_key() for s in storages))
    finally:
        for store in stores:
            await store.close()

    assert len({ring.active.kid for ring in rings}) == 1
    assert len({key.kid for key in token_keys}) == 1


async def test_a_due_rotation_run_by_two_replicas_at_once_happens_once(redis_url: str) -> None:
    settings = load_settings(environ={}, overrides={"signing_alg": "ES256", "key_rotation_days": 1})
    stores = [RedisStore(redis_url), RedisStore(redis_url)]
    for store in stores:
        await store.open()
    try:
        storages = [SharedKeyStorage(store) for store in stores]
        rings = [await storage.load_ring("ES256", 1000.0) for storage in storages]
        two_days_later = 1000.0 + 2 * 86400

        await asyncio.gather(
            *(
                rotate_signing_keys(st, ring, settings, two_days_later)
                for st, ring in zip(storages, rings, strict=True)
            )
        )
    finally:
        for store in stores:
            await store.close()

    # The replica that lost the compare-and-set found the ring already rotated: one new key.
    assert rings[0].active.kid == rings[1].active.kid
    assert len(rings[0].keys) == 2


async def test_ssf_hub_token_reads_the_shared_key_from_redis(tmp_path: Path, redis_url: str) -> None:
    async with run_hub(tmp_path / "data", store="redis", redis_url=redis_url) as running:
        minted = run(
            "token", "--store", "redis", "--redis-url", redis_url, "--sub", "rx", "--scope", "ssf.manage"
        )
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()

        r = await running.client.get("/ssf/stream", headers={"Authorization": f"Bearer {token}"})

        assert r.status_code == 200, r.text


def test_ssf_hub_token_with_redis_needs_the_url() -> None:
    result = run("token", "--store", "redis", "--sub", "rx", "--scope", "ssf.manage")

    assert result.returncode == 2
    assert "--redis-url" in result.stderr


def test_serve_on_an_unreachable_redis_says_so_in_one_line(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    result = run("serve", "--data-dir", str(tmp_path), "--store", "redis", "--redis-url", url)

    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"ssf-hub: cannot reach Redis at {url}: ")
