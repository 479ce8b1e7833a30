"""Several real ``ssf-hub serve`` processes on one Redis, for the multi-replica tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.hub import CAEP, free_port

SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")
PUSH = "urn:ietf:rfc:8935"
ALICE = {"format": "email", "email": "alice@example.com"}
START_TIMEOUT = 15.0


@dataclass
class Replica:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes]
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.AsyncClient(base_url=self.url, timeout=40)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log.read_text()}"
            with contextlib.suppress(httpx.HTTPError):
                if (await self.client.get("/healthz", timeout=1)).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"{self.name} did not become healthy:\n{self.log.read_text()}"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease released, requests in flight cut off."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self) -> None:
        await self.client.aclose()
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 10)
        except TimeoutError:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")


@dataclass
class Cluster:
    redis_url: str
    issuer: str
    replicas: list[Replica]
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def token(self, sub: str, scope: str) -> str:
        """A token every replica accepts: ``ssf-hub token`` reads the key they share in Redis."""
        if (sub, scope) not in self.tokens:
            argv = [SSF_HUB, "token", "--store", "redis", "--redis-url", self.redis_url]
            argv += ["--sub", sub, "--scope", scope, "--ttl", "600"]
            done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
            self.tokens[sub, scope] = done.stdout.strip()
        return self.tokens[sub, scope]

    def auth(self, sub: str = "receiver-1", scope: str = "ssf.manage") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, scope)}"}

    def admin(self) -> dict[str, str]:
        return self.auth("operator", "ssf.admin")

    async def create_stream(self, replica: Replica, **body: Any) -> dict[str, Any]:
        body.setdefault("events_requested", [CAEP + "session-revoked"])
        r = await replica.client.post("/ssf/stream", json=body, headers=self.auth())
        assert r.status_code == 201, r.text
        stream: dict[str, Any] = r.json()
        r = await replica.client.post(
            "/ssf/subjects:add",
            json={"stream_id": stream["stream_id"], "subject": ALICE},
            headers=self.auth(),
        )
        assert r.status_code == 200, r.text
        return stream

    async def emit(self, replica: Replica) -> list[str]:
        """Revoke Alice's session through ``replica``; the jtis of the SETs it queued."""
        r = await replica.client.post(
            "/ssf/admin/events", json={"event": "session-revoked", "subject": ALICE}, headers=self.admin()
        )
        assert r.status_code == 200, r.text  # 200: every SET durably queued
        return [s["jti"] for s in r.json()["sets"]]


def start_replica(name: str, redis_url: str, issuer: str, workdir: Path, env: Mapping[str, str]) -> Replica:
    port, log = free_port(), workdir / f"{name}.log"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    environ.update(env)
    argv = [SSF_HUB, "serve", "--store", "redis", "--redis-url", redis_url, "--port", str(port)]
    argv += ["--data-dir", str(workdir / name), "--issuer", issuer, "--allow-private-endpoints"]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=environ)
    return Replica(name, port, log, proc)


@contextlib.asynccontextmanager
async def hub_cluster(
    redis_url: str, workdir: Path, *, replicas: int = 2, env: Mapping[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """``replicas`` hub processes sharing ``redis_url`` and one issuer (a load balancer's
    URL in production; here nothing listens there, every test talks to a replica)."""
    issuer = f"http://127.0.0.1:{free_port()}"
    started = [start_replica(f"hub-{i + 1}", redis_url, issuer, workdir, env or {}) for i in range(replicas)]
    try:
        await asyncio.gather(*(r.wait_healthy() for r in started))
        yield Cluster(redis_url, issuer, started)
    finally:
        for replica in started:
            await replica.stop()
