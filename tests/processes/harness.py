"""``ssf-hub serve --processes 2`` as the tests run it, and a way to know which hub process
answered a request: the test looks up, in ``/proc``, which process holds the server end of
the client's TCP connection (Linux). That turns "a SET queued in one process wakes a long poll
held in the other" from likely into certain."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hub.auth.tokens import mint_local_token
from hub.keys.ring import load_or_create_token_key
from tests.bench.harness import children
from tests.push.helpers import ALICE
from tests.support.hub import CAEP, free_port
from tests.support.process import SSF_HUB, serve_process, socket_holder, tcp_sockets

FAST_RETRIES = {"SSF_HUB_PUSH_RETRY_SCHEDULE": "0,0.1"}


def hub_pids(supervisor: int) -> list[int]:
    """The hub processes under a ``serve --processes`` supervisor (its spawn children that
    serve; multiprocessing's resource tracker, if any, holds no listening socket)."""
    return [pid for pid in children(supervisor) if "spawn_main" in _cmdline(pid)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def server_pid(hub_port: int, client_port: int, candidates: list[int]) -> int | None:
    """Which of ``candidates`` holds the hub end of the connection from ``client_port``."""
    inodes = {s.inode for s in tcp_sockets() if (s.local_port, s.remote_port) == (hub_port, client_port)}
    return socket_holder(inodes, candidates) if inodes else None


def client_port(response: httpx.Response) -> int:
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


@dataclass
class HubProcesses:
    base: str
    port: int
    data_dir: Path
    supervisor: int
    log: Path
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    redis_url: str | None = None  # on Redis the token key is in the store, not the data dir
    popen: subprocess.Popen[bytes] | None = None  # the supervisor, as the test started it
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    def pids(self) -> list[int]:
        return hub_pids(self.supervisor)

    def auth(self, sub: str = "receiver-1", scope: str = "ssf.manage") -> dict[str, str]:
        if self.redis_url is None:
            key = load_or_create_token_key(self.data_dir)
            token = mint_local_token(key, sub=sub, scope=scope, ttl=600, now=time.time())
        elif (sub, scope) not in self._tokens:
            argv = [SSF_HUB, "token", "--store", "redis", "--redis-url", self.redis_url]
            argv += ["--sub", sub, "--scope", scope, "--ttl", "600"]
            done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
            token = self._tokens[sub, scope] = done.stdout.strip()
        else:
            token = self._tokens[sub, scope]
        return {"Authorization": f"Bearer {token}"}

    def admin(self) -> dict[str, str]:
        return self.auth("operator", "ssf.admin")

    def served_by(self, response: httpx.Response) -> int | None:
        return server_pid(self.port, client_port(response), self.pids())

    async def client_on(self, pid: int, tries: int = 80) -> httpx.AsyncClient:
        """A client whose one keep-alive connection is served by hub process ``pid``."""
        for _ in range(tries):
            client = httpx.AsyncClient(
                base_url=self.base,
                timeout=40,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            )
            r = await client.get("/healthz")
            if r.status_code == 200 and self.served_by(r) == pid:
                self.clients.append(client)
                return client
            await client.aclose()
        raise AssertionError(f"no connection landed on hub process {pid} in {tries} tries")

    async def create_stream(self, client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
        body.setdefault("events_requested", [CAEP + "session-revoked"])
        r = await client.post("/ssf/stream", json=body, headers=self.auth())
        assert r.status_code == 201, r.text
        stream: dict[str, Any] = r.json()
        r = await client.post(
            "/ssf/subjects:add",
            json={"stream_id": stream["stream_id"], "subject": ALICE},
            headers=self.auth(),
        )
        assert r.status_code == 200, r.text
        return stream


@contextlib.asynccontextmanager
async def hub_processes(
    tmp_path: Path,
    *flags: str,
    processes: int = 2,
    env: dict[str, str] | None = None,
    redis_url: str | None = None,
) -> AsyncIterator[HubProcesses]:
    data_dir, port, log = tmp_path / "data", free_port(), tmp_path / "hub.log"
    argv = ("--processes", str(processes), "--allow-private-endpoints", *flags)
    if redis_url is not None:
        argv += ("--store", "redis", "--redis-url", redis_url)
    async with serve_process(data_dir, port, log, *argv, env=env) as proc:
        hub = HubProcesses(
            f"http://127.0.0.1:{port}", port, data_dir, proc.pid, log, redis_url=redis_url, popen=proc
        )
        deadline = time.monotonic() + 15
        while len(hub.pids()) < processes:  # /healthz answered from one; wait for all
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        for pid in hub.pids():
            await hub.client_on(pid)  # every process has finished starting
        try:
            yield hub
        finally:
            for client in hub.clients:
                await client.aclose()
