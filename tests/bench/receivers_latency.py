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
every user's old token is then checked to be refused. The events come from the benchmark's
emitter process (``tests.bench.emitter``, on CPU 0 too), not from this process's event loop,
which the receiver needs; the stages of each SET's time are printed (the emit, the consumer's
next poll, the hub's answer, the receiver's queue and its processing), with the CPU share of the
hub and of this process. The hub gets a subject-change burst that covers one subject per event
(``SSF_HUB_SUBJECT_CHANGES_BURST``; the shipped default, 1,000, is unchanged).

    .venv/bin/python -m tests.bench.receivers_latency --rate 100 --events 1000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from tests.bench.harness import Worker, cpu_seconds
from tests.support.hub import free_port

ROOT = Path(__file__).resolve().parents[2]
SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")
IDP = "https://idp.bench.invalid"
PUSH_SECRET = "Bearer bench-push-secret"
WARMUP = 5
EMIT_LANES = 16  # emit requests in flight at most, as in emit_poll / emit_push


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") else argv


def hub_token(data_dir: str, sub: str, scope: str) -> str:
    out = subprocess.run(
        [SSF_HUB, "token", "--data-dir", data_dir, "--sub", sub, "--scope", scope, "--ttl", "3600"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


async def wait_up(url: str, proc: subprocess.Popen[bytes], limit: float = 60.0) -> None:
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


def jti_of(token: str | bytes) -> str:
    """The ``jti`` of a compact SET, read without verifying (the receiver verifies it)."""
    segment = (token.decode() if isinstance(token, bytes) else token).split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))["jti"])


class StageClock:
    """Where each SET's time went on the receiving side, to name the stage that falls behind.

    Wraps the consumer's HTTP client (when each poll request left and its answer came back) and
    the receiver (when the receiver started on each SET and which poll answer carried it)."""

    def __init__(self, receiver: Any) -> None:
        self.receiver = receiver
        self.sent: dict[int, float] = {}  # id(request) -> when the poll request left
        self.answer = (0.0, 0.0)  # the last poll answer: (its request left, it came back)
        self.started: dict[str, tuple[float, float, float]] = {}  # jti -> (request, answer, start)
        self.batches: list[int] = []  # SETs per poll answer

    async def on_request(self, request: httpx.Request) -> None:
        self.sent[id(request)] = time.monotonic()

    async def on_response(self, response: httpx.Response) -> None:
        self.answer = (self.sent.pop(id(response.request), 0.0), time.monotonic())
        self.batches.append(0)

    async def process(self, token: str | bytes) -> object:
        self.started.setdefault(jti_of(token), (*self.answer, time.monotonic()))
        if self.batches:
            self.batches[-1] += 1
        return await self.receiver.process(token)

    def stages(self, emitted: list[tuple[str, float, float]], seen: dict[str, float]) -> dict[str, Any]:
        """Per stage, its median / p99 over the SETs, and its mean over the slowest 1 %. Three
        stages add up to ``total`` (emit sent -> revocation recorded): ``to_answer``, sent -> the
        poll answer carrying the SET arrived (the hub's emit, its wake-up and answer, and any wait
        for the consumer's next poll); ``consumer_queue``, the answer (push: the emit sent) -> the
        receiver started on this SET (earlier SETs of the batch, the event loop); ``process``,
        verify and act. Beside them: ``emit``, sent -> the emitter had its 200 (the hub may
        answer the poll first), and ``poll_late``, the 200 -> the consumer's poll request left
        (0 when a long poll was already waiting at the hub)."""
        rows: list[dict[str, float]] = []
        for jti, sent, acked in emitted:
            if jti not in seen or jti not in self.started:
                continue
            asked, answered, start = self.started[jti]
            row = {"emit": acked - sent, "total": seen[jti] - sent, "process": seen[jti] - start}
            if answered:
                row["poll_late"] = max(0.0, asked - acked)
                row["to_answer"] = answered - sent
                row["consumer_queue"] = start - answered
            else:
                row["consumer_queue"] = start - sent
            rows.append(row)
        if not rows:
            return {}
        rows.sort(key=lambda r: r["total"])
        tail = rows[-max(1, len(rows) // 100) :]
        out: dict[str, Any] = {}
        for name in ("to_answer", "consumer_queue", "process", "total", "emit", "poll_late"):
            values = [r[name] for r in rows if name in r]
            if values:
                out[name] = {
                    **stats(values),
                    "tail_mean_ms": round(statistics.fmean(r.get(name, 0.0) for r in tail) * 1000, 2),
                }
        if self.batches:
            out["sets_per_poll_answer"] = {
                "mean": round(statistics.fmean(self.batches), 2),
                "max": max(self.batches),
                "answers": len(self.batches),
            }
        return out


async def tool(request: Request) -> JSONResponse:
    return JSONResponse({"result": 42})


async def probe(http: httpx.AsyncClient, url: str, token: str, limit: float) -> float | None:
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        r = await http.post(url, headers=headers)
        if r.status_code == 401:
            return time.monotonic()
        await asyncio.sleep(0.001)
    return None


async def paced(
    users: list[str],
    rate: float,
    access: ContinuousAccess,
    mint: Callable[[str], str],
    tool_url: str,
    base: str,
    admin_token: str,
    clock: StageClock,
    workdir: str,
    *,
    inline: bool = False,
) -> tuple[list[float], list[float], list[float], int, dict[str, Any]]:
    """One event per user at ``rate`` per second (the first ``WARMUP`` are not counted). The
    figure is the time to the receiver recording the revocation (an audit sink notes it): from that
    instant its middleware refuses the user's older credentials, which is checked for every user
    afterwards. Returns the latencies from the emit's 200 and from sending it (twice: the recorded
    instant is the refusal instant here), how many were never recorded or not refused, and the
    stages.

    The events come from the benchmark's emitter process (``tests.bench.emitter``: aiohttp,
    ``EMIT_LANES`` requests at most in flight), as in the other benchmarks. ``inline`` emits from
    this process instead, one httpx task per event (how this benchmark emitted before issue 18):
    at 500 events/s a hiccup leaves requests waiting in httpx's connection pool, whose every
    request then scans all waiting ones, and the emitter eats the core the receiver needs."""
    seen: dict[str, float] = {}

    def note(record: AuditRecord) -> None:
        if record.action == ACCESS_REVOKED and record.jti is not None:
            seen.setdefault(record.jti, time.monotonic())

    access.audit.add_sink(note)
    tokens = {user: mint(user) for user in users}  # issued before the events
    subjects = [{"format": "email", "email": user} for user in users]
    if inline:
        emitted = await emit_inline(subjects, rate, base, admin_token)
        late = 0.0
    else:
        plan = {
            "base": base,
            "token": admin_token,
            "subjects": subjects,
            "events": len(subjects),
            "concurrency": EMIT_LANES,
            "rate": rate,
            "start_at": time.monotonic() + 1.0,  # the worker's interpreter is up by then
        }
        report = await asyncio.to_thread(Worker("emitter", plan, workdir).report)
        if report["failures"]:
            raise RuntimeError(f"emits failed: {report['failures'][:3]}")
        emitted = [(jti, sent, acked) for jti, _sid, sent, acked in report["records"]]
        late = report.get("late_max", 0.0)
    deadline = time.monotonic() + 10
    while not all(jti in seen for jti, _, _ in emitted) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    missing = 0
    async with httpx.AsyncClient(timeout=30) as http:
        for user in users:
            r = await http.post(tool_url, headers={"Authorization": f"Bearer {tokens[user]}"})
            missing += r.status_code != 401
    emitted = emitted[WARMUP:]
    done = [(seen[jti], sent, acked) for jti, sent, acked in emitted if jti in seen]
    from_ack = [at - acked for at, _, acked in done]
    lost = max(missing, len(emitted) - len(done))
    stages = clock.stages(emitted, seen)
    stages["emitter_late_max_ms"] = round(late * 1000, 2)  # the emitter's worst lag behind the pace
    return from_ack, [at - sent for at, sent, _ in done], from_ack, lost, stages


async def emit_inline(
    subjects: list[dict[str, str]], rate: float, base: str, admin_token: str
) -> list[tuple[str, float, float]]:
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=50)) as http:

        async def emit(subject: dict[str, str], at: float) -> tuple[str, float, float]:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            body = {"event": "session-revoked", "subject": subject}
            sent = time.monotonic()
            r = await http.post(base + "/ssf/admin/events", json=body, headers=headers)
            acked = time.monotonic()
            assert r.status_code == 200, r.text
            return r.json()["sets"][0]["jti"], sent, acked

        start = time.monotonic() + 0.05
        return await asyncio.gather(*(emit(s, start + n / rate) for n, s in enumerate(subjects)))


async def run_mode(
    mode: str, events: int, rate: float = 0, *, inline_emitter: bool = False
) -> dict[str, Any]:
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
        # One subject per event is registered up front: give this owner a subject-change burst
        # that covers them (R-SUBJ-3's budget; the shipped default of 1,000 stays as it is).
        env = {
            **os.environ,
            "SSF_HUB_LOG_LEVEL": "warning",
            "SSF_HUB_SUBJECT_CHANGES_BURST": str(events + WARMUP + 100),
        }
        argv = [SSF_HUB, "serve", "--port", str(port), "--data-dir", data_dir, "--allow-private-endpoints"]
        hub = subprocess.Popen(pinned(1, argv), env=env, cwd=data_dir)
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_up(base + "/healthz", hub)
            admin_token = hub_token(data_dir, "bench-op", "ssf.admin")
            admin = {"Authorization": f"Bearer {admin_token}"}
            manage = StaticToken(hub_token(data_dir, "bench-tool", "ssf.manage"))
            async with (
                serve(app) as tool_base,
                httpx.AsyncClient(timeout=30) as http,
                contextlib.AsyncExitStack() as stack,
            ):
                client = await StreamClient.discover(base, http=http, auth=manage)
                if mode == "push":
                    delivery = push_delivery(tool_base + "/ssf/push/", PUSH_SECRET)
                    stream = await client.create_stream(events_requested=[SESSION_REVOKED], delivery=delivery)
                else:
                    stream = await client.create_stream(events_requested=[SESSION_REVOKED])
                clock = StageClock(client.receiver(stream, dispatcher=access.dispatcher))
                receiver: Any = clock
                push_app.app = PushEndpoint(receiver, authorization=PUSH_SECRET)
                users = [f"user-{n}@bench.example" for n in range(events + WARMUP)]
                adding = asyncio.Semaphore(8)  # set-up only: a few requests at a time

                async def add(user: str) -> None:
                    async with adding:
                        for attempt in range(3):  # a starved machine may cut a slow request
                            try:
                                await client.add_subject(stream.stream_id, {"format": "email", "email": user})
                                return
                            except httpx.TransportError:
                                if attempt == 2:
                                    raise

                await asyncio.gather(*(add(user) for user in users))
                consumer = None
                if mode == "poll":
                    assert stream.endpoint_url is not None
                    poll_http = await stack.enter_async_context(
                        httpx.AsyncClient(
                            timeout=30,
                            event_hooks={"request": [clock.on_request], "response": [clock.on_response]},
                        )
                    )
                    consumer = PollConsumer(stream.endpoint_url, receiver, http=poll_http, auth=client.auth)
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
                stages: dict[str, Any] = {}
                if rate:
                    hub_cpu, own_cpu, wall = cpu_seconds(hub.pid), time.process_time(), time.monotonic()
                    from_ack, from_send, recorded, timeouts, stages = await paced(
                        users,
                        rate,
                        access,
                        mint,
                        tool_base + "/tools/answer",
                        base,
                        admin_token,
                        clock,
                        data_dir,
                        inline=inline_emitter,
                    )
                    wall = time.monotonic() - wall
                    # A core's share each process had: near 1.0 means that side was the limit.
                    stages["cpu_share"] = {
                        "hub": round((cpu_seconds(hub.pid) - hub_cpu) / wall, 2),
                        "receiver": round((time.process_time() - own_cpu) / wall, 2),
                    }
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
                            sent = time.monotonic()
                            r = await emit_http.post(base + "/ssf/admin/events", json=body, headers=admin)
                            acked = time.monotonic()
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
                            recorded.append(rec.at - (time.time() - time.monotonic()) - acked)  # may be < 0
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
        "stages": stages,
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
    parser.add_argument(
        "--inline-emitter",
        action="store_true",
        help="emit from this process with one httpx task per event (the pre-issue-18 harness)",
    )
    parser.add_argument("--out", default=str(ROOT / "tests/bench/results/receivers_latency.json"))
    args = parser.parse_args()
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {0})
    if args.quick:
        args.events, args.rate, args.runs = 30, args.rate or 100, 1
    results: list[dict[str, Any]] = []
    out = {
        "command": " ".join([".venv/bin/python -m tests.bench.receivers_latency", *sys.argv[1:]]),
        "host": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for mode in args.modes.split(","):
        for _ in range(args.runs):
            results.append(
                asyncio.run(run_mode(mode, args.events, args.rate, inline_emitter=args.inline_emitter))
            )
            Path(args.out).write_text(json.dumps(out, indent=2) + "\n")  # each run kept as it ends
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
    for r in results:
        if not r["stages"]:
            continue
        path = f"{r['mode']}@{r['rate']:g}/s"
        print(f"\nstages of {path} (ms): median / p99 / mean of the slowest 1 %")
        for name, st in r["stages"].items():
            if isinstance(st, dict) and "median_ms" in st:
                print(f"  {name:<16}{st['median_ms']:>9}{st['p99_ms']:>9}{st['tail_mean_ms']:>9}")
            else:
                print(f"  {name:<16}{st}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
