"""Signal-to-refusal latency: from an event queued at a real ``ssf-hub serve`` to the
``ContinuousAccessMiddleware`` of a tool server refusing the next request, by poll and by push.

    .venv/bin/python -m tests.bench.receivers_latency [--events 100] [--modes poll,push]
        [--out tests/bench/results/receivers_latency.json]

Per mode: the hub runs as its own process (on CPU 1 when ``taskset`` exists; this process on
CPU 0). This process serves a tool app behind the middleware, with the receivers'
``PushEndpoint`` mounted beside it, subscribes (a poll stream consumed by ``PollConsumer``
long polls, or a push stream to the mounted endpoint) and registers one user per event.
For each event a probe keeps calling the tool with that user's token (issued before the
event) every millisecond; the admin emit of ``session-revoked`` is timed, and the figure is
the time from the emit's ``200`` (the SET is durably queued) to the first ``401``. The time
from sending the emit is reported too (it adds signing and the store commit), as is the time
at which the receiver recorded the revocation. Prints a table and writes JSON.

With ``--rate R`` the events are paced at R per second instead (the issue's "p99 at 100
events/s"), with no probe per event (probing every user each millisecond would load the
receiver's core more than the events do): the figure is the time to the receiver recording
the revocation, the instant from which the middleware refuses the user's older credentials;
every user's old token is then checked to be refused.

    .venv/bin/python -m tests.bench.receivers_latency --rate 100 --events 1000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from receivers import (
    BearerJwtIdentity,
    ContinuousAccess,
    ContinuousAccessMiddleware,
    JwtVerifier,
    PollConsumer,
    PushEndpoint,
    StaticKeys,
    StaticToken,
    StreamClient,
    push_delivery,
)
from receivers.audit import ACCESS_REVOKED, AuditRecord
from receivers.events import SESSION_REVOKED
from tests.support.hub import free_port

ROOT = Path(__file__).resolve().parents[2]
SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")
IDP = "https://idp.bench.invalid"
PUSH_SECRET = "Bearer bench-push-secret"
WARMUP = 5


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") else argv


def hub_token(data_dir: str, sub: str, scope: str) -> str:
    out = subprocess.run(
        [SSF_HUB, "token", "--data-dir", data_dir, "--sub", sub, "--scope", scope, "--ttl", "3600"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


async def wait_up(url: str, proc: subprocess.Popen[bytes], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the hub exited early")
            try:
                if (await http.get(url, timeout=1)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} not up")


def stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
    return {
        "median_ms": round(statistics.median(ms), 2),
        "p99_ms": round(p99, 2),
        "min_ms": round(ms[0], 2),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


@contextlib.asynccontextmanager
async def serve(app: ASGIApp) -> AsyncIterator[str]:
    """uvicorn on a free loopback port. The socket is made with ``IPPROTO_TCP`` so asyncio sets
    ``TCP_NODELAY`` on accepted connections, as it does when uvicorn binds host and port itself;
    without it every response written in two parts waits ~40 ms (Nagle + delayed ACK)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", log_config=None, ws="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class LateApp:
    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None
        await self.app(scope, receive, send)


async def tool(request: Request) -> JSONResponse:
    return JSONResponse({"result": 42})


async def probe(http: httpx.AsyncClient, url: str, token: str, limit: float) -> float | None:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        r = await http.post(url, headers=headers)
        if r.status_code == 401:
            return time.perf_counter()
        await asyncio.sleep(0.001)
    return None


async def paced(
    users: list[str],
    rate: float,
    access: ContinuousAccess,
    mint: Callable[[str], str],
    tool_url: str,
    base: str,
    admin: dict[str, str],
) -> tuple[list[float], list[float], list[float], int]:
    """One event per user at ``rate`` per second, whatever the answers' pace (the first
    ``WARMUP`` are not counted). The figure is the
    time to the receiver recording the revocation (an audit sink notes it): from that instant its
    middleware refuses the user's older credentials, which is checked for every user afterwards.
    Returns the latencies from the emit's 200 and from sending it (twice: the recorded instant is
    the refusal instant here), and how many were never recorded or not refused."""
    seen: dict[str, float] = {}

    def note(record: AuditRecord) -> None:
        if record.action == ACCESS_REVOKED and record.jti is not None:
            seen.setdefault(record.jti, time.perf_counter())

    access.audit.add_sink(note)
    tokens = {user: mint(user) for user in users}  # issued before the events
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=50)) as http:

        async def emit(user: str, at: float) -> tuple[str, float, float]:
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            body = {"event": "session-revoked", "subject": {"format": "email", "email": user}}
            sent = time.perf_counter()
            r = await http.post(base + "/ssf/admin/events", json=body, headers=admin)
            acked = time.perf_counter()
            assert r.status_code == 200, r.text
            return r.json()["sets"][0]["jti"], sent, acked

        start = time.perf_counter() + 0.05
        emitted = await asyncio.gather(*(emit(u, start + n / rate) for n, u in enumerate(users)))
        deadline = time.perf_counter() + 10
        while not all(jti in seen for jti, _, _ in emitted) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        missing = 0
        for user in users:
            r = await http.post(tool_url, headers={"Authorization": f"Bearer {tokens[user]}"})
            missing += r.status_code != 401
    emitted = emitted[WARMUP:]
    done = [(seen[jti], sent, acked) for jti, sent, acked in emitted if jti in seen]
    from_ack = [at - acked for at, _, acked in done]
    return from_ack, [at - sent for at, sent, _ in done], from_ack, max(missing, len(emitted) - len(done))


async def run_mode(mode: str, events: int, rate: float = 0) -> dict[str, Any]:
    key = ECKey.generate_key("P-256", parameters={"alg": "ES256"})
    key.ensure_kid()

    def mint(user: str) -> str:
        now = int(time.time()) - 60
        claims = {"iss": IDP, "sub": user, "email": user, "aud": "tools", "iat": now, "exp": now + 3600}
        return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])

    access = ContinuousAccess()
    verifier = JwtVerifier(StaticKeys([key]), issuer=IDP, audience="tools")
    protected = ContinuousAccessMiddleware(
        Starlette(routes=[Route("/tools/answer", tool, methods=["POST"])]),
        access,
        identity=BearerJwtIdentity(verifier),
    )
    push_app = LateApp()  # the push endpoint needs the stream, the stream needs the server's URL
    app = Starlette(routes=[Mount("/ssf/push", app=push_app), Mount("/", app=protected)])

    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        env = {**os.environ, "SSF_HUB_LOG_LEVEL": "warning"}
        argv = [SSF_HUB, "serve", "--port", str(port), "--data-dir", data_dir, "--allow-private-endpoints"]
        hub = subprocess.Popen(pinned(1, argv), env=env, cwd=data_dir)
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_up(base + "/healthz", hub)
            admin = {"Authorization": f"Bearer {hub_token(data_dir, 'bench-op', 'ssf.admin')}"}
            manage = StaticToken(hub_token(data_dir, "bench-tool", "ssf.manage"))
            async with serve(app) as tool_base, httpx.AsyncClient(timeout=30) as http:
                client = await StreamClient.discover(base, http=http, auth=manage)
                if mode == "push":
                    delivery = push_delivery(tool_base + "/ssf/push/", PUSH_SECRET)
                    stream = await client.create_stream(events_requested=[SESSION_REVOKED], delivery=delivery)
                else:
                    stream = await client.create_stream(events_requested=[SESSION_REVOKED])
                receiver = client.receiver(stream, dispatcher=access.dispatcher)
                push_app.app = PushEndpoint(receiver, authorization=PUSH_SECRET)
                users = [f"user-{n}@bench.example" for n in range(events + WARMUP)]
                for user in users:
                    await client.add_subject(stream.stream_id, {"format": "email", "email": user})
                consumer = None
                if mode == "poll":
                    assert stream.endpoint_url is not None
                    consumer = PollConsumer(stream.endpoint_url, receiver, http=http, auth=client.auth)
                    consumer_task = asyncio.create_task(consumer.run())
                state = await client.request_verification(stream.stream_id)
                deadline = time.monotonic() + 10
                while not client.states.confirmed(stream.stream_id, state):
                    assert time.monotonic() < deadline, "verification did not arrive"
                    await asyncio.sleep(0.01)

                from_ack: list[float] = []
                from_send: list[float] = []
                recorded: list[float] = []
                timeouts = 0
                if rate:
                    from_ack, from_send, recorded, timeouts = await paced(
                        users, rate, access, mint, tool_base + "/tools/answer", base, admin
                    )
                else:
                    async with (
                        httpx.AsyncClient(timeout=10) as probe_http,
                        httpx.AsyncClient(timeout=30) as emit_http,
                    ):
                        for n, user in enumerate(users):
                            token = mint(user)
                            url = tool_base + "/tools/answer"
                            assert (
                                await probe_http.post(url, headers={"Authorization": f"Bearer {token}"})
                            ).status_code == 200
                            probing = asyncio.create_task(probe(probe_http, url, token, 10.0))
                            await asyncio.sleep(0.005)
                            body = {"event": "session-revoked", "subject": {"format": "email", "email": user}}
                            sent = time.perf_counter()
                            r = await emit_http.post(base + "/ssf/admin/events", json=body, headers=admin)
                            acked = time.perf_counter()
                            assert r.status_code == 200, r.text
                            refused = await probing
                            if n < WARMUP:
                                continue
                            if refused is None:
                                timeouts += 1
                                continue
                            from_ack.append(refused - acked)
                            from_send.append(refused - sent)
                            jti = r.json()["sets"][0]["jti"]
                            (rec,) = [x for x in access.audit.find(ACCESS_REVOKED) if x.jti == jti]
                            # audit time is wall clock: convert via the offset between the two clocks
                            recorded.append(
                                rec.at - (time.time() - time.perf_counter()) - acked
                            )  # may be < 0
                            await asyncio.sleep(0.02)
                if consumer is not None:
                    await consumer.stop()
                    await consumer_task
        finally:
            hub.terminate()
            hub.wait(timeout=10)
    return {
        "mode": mode,
        "rate": rate or None,
        "events": len(from_ack),
        "timeouts": timeouts,
        "from_emit_acknowledged": stats(from_ack),
        "from_emit_sent": stats(from_send),
        "revocation_recorded_after_ack": stats(recorded),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument(
        "--rate", type=float, default=0, help="events per second, paced (default: one at a time, probed)"
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="30 events at 100/s: a smoke run")
    parser.add_argument("--modes", default="poll,push")
    parser.add_argument("--out", default=str(ROOT / "tests/bench/results/receivers_latency.json"))
    args = parser.parse_args()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {0})
    if args.quick:
        args.events, args.rate, args.runs = 30, args.rate or 100, 1
    results = [
        asyncio.run(run_mode(mode, args.events, args.rate))
        for mode in args.modes.split(",")
        for _ in range(args.runs)
    ]
    for key, title in (
        ("from_emit_acknowledged", "emit acknowledged (SET queued) -> next request refused"),
        ("from_emit_sent", "emit sent -> next request refused"),
        ("revocation_recorded_after_ack", "emit acknowledged -> revocation recorded by the receiver"),
    ):
        print(f"\n{title}")
        print(f"{'path':<11}{'events':>8}{'median ms':>11}{'p99 ms':>9}{'min ms':>9}{'max ms':>9}")
        for r in results:
            st = r[key]
            path = f"{r['mode']}@{r['rate']:g}/s" if r["rate"] else r["mode"]
            print(
                f"{path:<11}{r['events']:>8}{st['median_ms']:>11}{st['p99_ms']:>9}{st['min_ms']:>9}{st['max_ms']:>9}"
            )
    out = {
        "command": " ".join([".venv/bin/python -m tests.bench.receivers_latency", *sys.argv[1:]]),
        "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
