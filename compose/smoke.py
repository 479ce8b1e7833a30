"""The smoke check ``compose/loopback.py --smoke`` runs through the running topology.

1. The balancer serves the hub's discovery document with the shared issuer URL.
2. Each example receiver subscribed through the balancer; the agent's calls to the tool
   server succeed with Alice's token.
3. ``ssf-hub emit`` through the balancer revokes Alice's session; within seconds the tool
   server and the LLM gateway refuse her token (the SET reached their poll streams, held
   on whichever replica the balancer picked).
4. A stream created on one replica is read on the other, and a long poll held on the
   second is woken by an emit on the first.
5. Both replicas served requests through the balancer.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import httpx

from receivers.examples._demo import DevIdentityProvider

ALICE = {"format": "email", "email": "alice@example.com"}
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
REVOCATION_DEADLINE = 15.0  # seconds for a revocation to reach every example


class ProcessLike(Protocol):
    service: str
    kind: str
    argv: list[str]
    env: dict[str, str]
    port: int | None

    @property
    def url(self) -> str: ...


class TopologyLike(Protocol):
    processes: dict[str, Any]

    def tail(self, service: str, lines: int = 30) -> str: ...


class SmokeFailure(AssertionError):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SmokeFailure(what)
    print(f"  ok  {what}", flush=True)


def smoke_check(topology: TopologyLike) -> None:
    procs = topology.processes
    lb = next(p for p in procs.values() if p.kind == "balancer")
    hubs = [p for p in procs.values() if p.kind == "hub"]
    examples = {p.service: p for p in procs.values() if p.kind == "example"}
    token = Tokens(hubs[0])

    meta = httpx.get(lb.url + "/.well-known/ssf-configuration", timeout=5).json()
    check(meta["issuer"] == lb.url, f"discovery through the balancer names the issuer {lb.url}")

    idp = DevIdentityProvider(Path(_flag(examples["tool-server"], "--demo-dir")))
    alice = {"Authorization": f"Bearer {idp.mint('alice@example.com', email='alice@example.com')}"}
    tool = examples["tool-server"].url + "/tools/answer"
    gateway = examples["llm-gateway"].url + "/v1/chat/completions"
    chat = {"messages": [{"role": "user", "content": "hello"}]}
    check(
        httpx.post(tool, json={"question": "q"}, headers=alice).status_code == 200,
        "the tool server serves Alice",
    )
    check(httpx.post(gateway, json=chat, headers=alice).status_code == 200, "the LLM gateway serves Alice")
    _wait(lambda: "HTTP 200" in topology.tail("agent", 200), 10, "the agent's tool calls succeed")

    admin = token("smoke-operator", "ssf.admin")
    emitted = subprocess.run(  # noqa: S603 - our own ssf-hub command
        [
            *_ssf_hub(hubs[0]),
            "emit",
            "--url",
            lb.url,
            "--token",
            admin,
            "--event",
            "session-revoked",
            "--subject",
            json.dumps(ALICE),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    check(emitted.returncode == 0, f"ssf-hub emit through the balancer (txn {emitted.stdout.strip()})")
    started = time.monotonic()
    _wait(
        lambda: httpx.post(tool, json={"question": "q"}, headers=alice).status_code == 401,
        REVOCATION_DEADLINE,
        "the tool server refuses Alice after the revocation",
    )
    _wait(
        lambda: httpx.post(gateway, json=chat, headers=alice).status_code == 401,
        REVOCATION_DEADLINE,
        "the LLM gateway refuses Alice after the revocation",
    )
    print(f"      revocation reached both services in {time.monotonic() - started:.2f} s", flush=True)

    cross_replica(hubs[0], hubs[1], token("smoke-receiver", "ssf.manage"), admin)

    served = httpx.get(lb.url + "/_balancer", timeout=5).json()
    check(all(b["served"] > 0 for b in served.values()), f"both replicas served requests: {served}")


def cross_replica(a: ProcessLike, b: ProcessLike, manage: str, admin: str) -> None:
    auth = {"Authorization": f"Bearer {manage}"}
    created = httpx.post(
        a.url + "/ssf/stream",
        headers=auth,
        timeout=5,
        json={"events_requested": [CAEP + "credential-change"]},
    )
    check(created.status_code == 201, f"{a.service} creates a poll stream")
    stream = created.json()
    sid = stream["stream_id"]
    read = httpx.get(b.url + "/ssf/stream", params={"stream_id": sid}, headers=auth, timeout=5)
    check(read.status_code == 200 and read.json()["stream_id"] == sid, f"{b.service} reads it")
    subject = {"format": "email", "email": "bob@example.com"}
    added = httpx.post(
        b.url + "/ssf/subjects:add", headers=auth, timeout=5, json={"stream_id": sid, "subject": subject}
    )
    check(added.status_code == 200, f"{b.service} adds a subject to it")

    polled: dict[str, Any] = {}

    def long_poll() -> None:
        r = httpx.post(
            f"{b.url}/ssf/poll/{sid}",
            headers=auth,
            timeout=30,
            json={"returnImmediately": False, "maxEvents": 10},
        )
        polled.update(r.json())

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    time.sleep(0.5)  # the poll is held on b by now
    sent = time.monotonic()
    emitted = httpx.post(
        a.url + "/ssf/admin/events",
        headers={"Authorization": f"Bearer {admin}"},
        timeout=5,
        json={
            "event": "credential-change",
            "subject": subject,
            "claims": {"credential_type": "password", "change_type": "update"},
        },
    )
    check(emitted.status_code == 200, f"{a.service} queues a SET for it")
    waiter.join(25)
    woke = time.monotonic() - sent
    check(
        len(polled.get("sets", {})) == 1,
        f"the long poll held on {b.service} returned it ({woke:.2f} s after the emit)",
    )


class Tokens:
    """Access tokens from ``ssf-hub token`` pointed at the replicas' shared store."""

    def __init__(self, hub: ProcessLike) -> None:
        self.hub = hub

    def __call__(self, sub: str, scope: str) -> str:
        store = [a for a in self.hub.argv if a.startswith(("--store=", "--redis-url="))]
        argv = [*_ssf_hub(self.hub), "token", *store, "--sub", sub, "--scope", scope, "--ttl", "600"]
        return subprocess.run(  # noqa: S603 - our own ssf-hub command
            argv, capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()


def _ssf_hub(hub: ProcessLike) -> list[str]:
    return [hub.argv[0]]


def _flag(process: ProcessLike, name: str) -> str:
    return next(a.split("=", 1)[1] for a in process.argv if a.startswith(name + "="))


def _wait(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SmokeFailure(f"not within {seconds} s: {what}")
        time.sleep(0.1)
    check(True, what)
