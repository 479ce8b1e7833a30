"""What every fault scenario is built from: hub processes, a push receiver, a poll drain, a tally.

A scenario runs real ``ssf-hub serve`` processes on loopback, one push stream (to an in-process
receiver) and one poll stream, both registered for the same subject, so each event becomes one
SET per stream. The :class:`Tally` counts what the hub acknowledged (SETs in a 200 answer to an
emit, i.e. durably queued) against what reached the receivers, so a scenario can say: lost
(acknowledged, never delivered; must be 0), duplicates (delivered more than once; allowed by
at-least-once, and bounded), and how long delivery took to catch up after the fault ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hub.auth.tokens import mint_local_token
from hub.keys.ring import load_or_create_token_key
from tests.push.helpers import jti_of
from tests.support.hub import CAEP, free_port
from tests.support.process import SSF_HUB
from tests.support.receiver import PushReceiver

PUSH = "urn:ietf:rfc:8935"
ALICE = {"format": "email", "email": "alice@example.com"}
HEALTHY_WITHIN = 20.0


@dataclass
class HubProcess:
    """One ``ssf-hub serve`` child that a scenario may SIGKILL and start again (same port)."""

    data_dir: Path
    log: Path
    flags: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> float:
        """Start it; returns the seconds until ``/healthz`` answered 200."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
        environ.update(self.env)
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [SSF_HUB, "serve", "--allow-private-endpoints", *self.flags, *self.place()],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environ,
            )
        self.starts += 1
        async with httpx.AsyncClient() as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the hub exited at start: {self.log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + "/healthz", timeout=1)).status_code == 200:
                        return time.monotonic() - started
                if time.monotonic() - started > HEALTHY_WITHIN:
                    raise RuntimeError("the hub did not become healthy")
                await asyncio.sleep(0.05)

    def place(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--port", str(self.port)]

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.process.wait)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(asyncio.to_thread(self.process.wait), 10)
            except TimeoutError:
                await self.kill()


def bearer(data_dir: Path, sub: str, scope: str) -> dict[str, str]:
    key = load_or_create_token_key(data_dir)
    token = mint_local_token(key, sub=sub, scope=scope, ttl=3600, now=time.time())
    return {"Authorization": f"Bearer {token}"}


def local_tokens(data_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A receiver's and an operator's bearer headers for the SQLite hub on ``data_dir``."""
    return bearer(data_dir, "receiver-1", "ssf.manage"), bearer(data_dir, "secops", "ssf.admin")


@dataclass
class Tally:
    """Acknowledged versus delivered SETs, per stream kind."""

    acknowledged: set[str] = field(default_factory=set)
    refused_emits: int = 0  # emits answered 503 or not answered (the hub down): not acknowledged
    refusals: Counter[str] = field(default_factory=Counter)  # by status code, "no answer" when down
    polled: Counter[str] = field(default_factory=Counter)

    def delivered(self, receiver: PushReceiver) -> Counter[str]:
        pushed = Counter(jti_of(body) for body in receiver.accepted())
        return pushed + self.polled

    def missing(self, receiver: PushReceiver) -> set[str]:
        return self.acknowledged - set(self.delivered(receiver))

    def result(self, receiver: PushReceiver, **extra: Any) -> dict[str, Any]:
        delivered = self.delivered(receiver)
        pushed = Counter(jti_of(body) for body in receiver.accepted())
        return {
            "acknowledged": len(self.acknowledged),
            "delivered": len(set(delivered) & self.acknowledged),
            "lost": len(self.missing(receiver)),
            "duplicates": sum(n - 1 for n in delivered.values() if n > 1),
            # Push resends only what was on the wire or being committed; a poll redelivers the
            # last batch whose ack the crash interrupted.
            "push_duplicates": sum(n - 1 for n in pushed.values() if n > 1),
            "refused_emits": self.refused_emits,
            "refusals": dict(self.refusals),
            **extra,
        }


@dataclass
class Streams:
    push_id: str
    poll_id: str
    poll_url: str


async def create_streams(base: str, manage: Mapping[str, str], receiver: PushReceiver) -> Streams:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        events = [CAEP + "session-revoked"]
        push = {"delivery": {"method": PUSH, "endpoint_url": receiver.url}, "events_requested": events}
        poll = {"events_requested": events}
        ids = []
        for body in (push, poll):
            r = await client.post("/ssf/stream", json=body, headers=manage)
            r.raise_for_status()
            ids.append(r.json())
            subject = {"stream_id": r.json()["stream_id"], "subject": ALICE}
            (await client.post("/ssf/subjects:add", json=subject, headers=manage)).raise_for_status()
        return Streams(ids[0]["stream_id"], ids[1]["stream_id"], ids[1]["delivery"]["endpoint_url"])


async def emit_until(
    urls: Sequence[str], admin: Mapping[str, str], tally: Tally, sets: int, *, concurrency: int = 8
) -> None:
    """Emit events (round-robin over ``urls``) until ``sets`` SETs were acknowledged."""
    turn = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal turn
        while len(tally.acknowledged) < sets:
            url = urls[turn % len(urls)]
            turn += 1
            try:
                r = await client.post(
                    url + "/ssf/admin/events",
                    json={"event": "session-revoked", "subject": ALICE},
                    headers=admin,
                )
            except httpx.HTTPError:
                tally.refused_emits += 1
                tally.refusals["no answer"] += 1
                await asyncio.sleep(0.05)
                continue
            if r.status_code == 200:
                tally.acknowledged.update(s["jti"] for s in r.json()["sets"])
            else:
                tally.refused_emits += 1
                tally.refusals[str(r.status_code)] += 1
                await asyncio.sleep(0.05)

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))


@contextlib.asynccontextmanager
async def draining(
    urls: Sequence[str], poll_path: str, manage: Mapping[str, str], tally: Tally
) -> AsyncIterator[None]:
    """Long-poll the poll stream (acknowledging what arrives) for as long as the block runs."""

    async def drain() -> None:
        turn, ack = 0, list[str]()
        async with httpx.AsyncClient(timeout=40) as client:
            while True:
                url = urls[turn % len(urls)] + poll_path
                turn += 1
                try:
                    r = await client.post(url, json={"ack": ack, "maxEvents": 200}, headers=manage)
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
                    continue
                if r.status_code != 200:
                    await asyncio.sleep(0.1)
                    continue
                ack = list(r.json()["sets"])
                tally.polled.update(ack)

    task = asyncio.create_task(drain())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def caught_up(tally: Tally, receiver: PushReceiver, timeout: float) -> float | None:
    """Seconds until every acknowledged SET was delivered, or None when not within ``timeout``."""
    started = time.monotonic()
    while tally.missing(receiver):
        if time.monotonic() - started > timeout:
            return None
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def poll_path(poll_url: str, base: str) -> str:
    return poll_url.removeprefix(base)
