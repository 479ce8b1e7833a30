"""Emit -> poll and emit -> push throughput with 1 and 2 hub replicas on Redis against 1 hub
on SQLite, and how fast a long poll wakes when its SET was queued on the other replica.

    .venv/bin/python -m tests.bench.replicas [--quick] [--runs 3] [--events 4000] [--streams 100]
        [--configs sqlite:1,redis:1,redis:2] [--modes poll,push,wakeup] [--profile]
        (also redis-cluster:N: a three-master Redis Cluster, started like the tests' one)

The emit_poll / emit_push workload with their workers (``tests.bench.emitter``,
``tests.bench.poller``, ``tests.bench.receiver``): S streams with one subject each, N
session-revoked events (event k for stream k mod S) sent with 16 in flight, ES256 signing.
With R replicas there is one emitter per replica (N/R events each, started together), poll
stream i is long-polled through replica i mod R and push streams are shared by the replicas
through their leases. Redis runs with ``appendonly yes, appendfsync everysec`` (the
production setting), a cluster without persistence; SQLite with ``synchronous FULL`` (the
default). ``wakeup`` sends 20 events/s instead of as fast as possible and splits the
emit -> poll latency into SETs polled on the replica that queued them and SETs polled on
the other one (woken through pub/sub). ``--profile`` adds one uncounted run per mode and
configuration with py-spy sampling the first replica (``tests.bench.profiles`` reads it).

Nothing is pinned to a CPU: replicas exist to use more cores, and on a small machine the
load generator, receiver and Redis share those cores with them. Say so next to any figure.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.bench import harness as h
from tests.bench.profiles import summarise
from tests.support.redis import start_redis, start_redis_cluster

ALG = "ES256"
WAKEUP_RATE = 20.0  # events per second in the wake-up scenario
UNPINNED = 1 << 16  # a CPU number no machine has: harness.pinned() then leaves the worker unpinned


class Replicas:
    """R ``ssf-hub serve`` processes on one store (R = 1 on SQLite)."""

    def __init__(self, workdir: Path, store: str, count: int, redis_url: str | None) -> None:
        self.workdir, self.store, self.redis_url = workdir, store, redis_url
        self.ports = [h.free_port() for _ in range(count)]
        self.bases = [f"http://127.0.0.1:{p}" for p in self.ports]
        self.issuer = self.bases[0]
        self.procs: list[subprocess.Popen[bytes]] = []
        self._tokens: dict[tuple[str, str], str] = {}

    def store_flags(self) -> list[str]:
        """Where ``serve`` keeps its data beyond ``--data-dir``, and ``token`` finds its key."""
        if self.store in ("redis", "redis-cluster"):
            assert self.redis_url is not None
            return ["--store", "redis", "--redis-url", self.redis_url]
        if len(self.ports) > 1:
            raise ValueError("SQLite serves one process; replicas need --configs redis:N")
        return ["--data-dir", str(self.workdir / "hub-1")]

    @contextlib.contextmanager
    def running(self) -> Iterator[Replicas]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
        env.update(
            SSF_HUB_SIGNING_ALG=ALG,
            SSF_HUB_LOG_LEVEL="warning",
            SSF_HUB_MIN_VERIFICATION_INTERVAL="0",
            SSF_HUB_PUSH_ENDPOINT_RATE="0",
            SSF_HUB_ISSUER=self.issuer,
            # One process per replica: the figures are about replicas, not signing processes.
            SSF_HUB_SIGNING_PROCESSES="0",
        )
        try:
            for i, port in enumerate(self.ports):
                data = self.workdir / f"hub-{i + 1}"
                data.mkdir(parents=True, exist_ok=True)
                argv = [h.SSF_HUB, "serve", "--port", str(port), "--allow-private-endpoints"]
                argv += [*self.store_flags(), "--data-dir", str(data)]  # the last --data-dir wins
                self.procs.append(subprocess.Popen(argv, env=env, cwd=data))
            for base, proc in zip(self.bases, self.procs, strict=True):
                h.wait_http(base + "/healthz", proc, limit=60)  # a busy machine starts slowly
            yield self
        finally:
            for proc in self.procs:
                h.stop(proc)

    def token(self, sub: str, scope: str) -> str:
        if (sub, scope) not in self._tokens:
            argv = [h.SSF_HUB, "token", *self.store_flags(), "--sub", sub, "--scope", scope, "--ttl", "7200"]
            out = subprocess.run(argv, capture_output=True, text=True, check=True)
            self._tokens[sub, scope] = out.stdout.strip()
        return self._tokens[sub, scope]

    def create_streams(
        self, subjects: Sequence[dict[str, str]], push_url: str | None
    ) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token('bench', 'ssf.manage')}"}
        streams = []
        with httpx.Client(headers=headers, timeout=60) as client:
            for i, subject in enumerate(subjects):
                base = self.bases[i % len(self.bases)]  # created on every replica in turn
                body: dict[str, Any] = {"events_requested": [h.SESSION_REVOKED]}
                if push_url is not None:
                    body["delivery"] = {"method": "urn:ietf:rfc:8935", "endpoint_url": f"{push_url}/s/{i}"}
                r = client.post(base + "/ssf/stream", json=body)
                r.raise_for_status()
                stream = r.json()
                add = {"stream_id": stream["stream_id"], "subject": subject}
                client.post(base + "/ssf/subjects:add", json=add).raise_for_status()
                streams.append(stream)
        return streams

    def cpu_seconds(self) -> float:
        return sum(h.cpu_seconds(p.pid) for p in self.procs)

    def rss_kib(self) -> int:
        return sum(h.rss_kib(p.pid) for p in self.procs)


def emitters(
    hubs: Replicas, subjects: list[dict[str, str]], events: int, rate: float, tmp: str
) -> list[h.Worker]:
    """One emitter per replica, N/R events each, starting at the same instant."""
    start_at = time.monotonic() + 1.0
    count = len(hubs.bases)
    workers = []
    for i, base in enumerate(hubs.bases):
        plan = {
            "base": base,
            "token": hubs.token("bench-op", "ssf.admin"),
            "subjects": subjects,
            "events": events // count + (i < events % count),
            "concurrency": 16 if not rate else 4,
            "rate": rate / count,
            "start_at": start_at,
        }
        workers.append(h.Worker("emitter", plan, tmp, cpu=UNPINNED))
    return workers


def merged(reports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "records": [r for report in reports for r in report["records"]],
        "failures": [f for report in reports for f in report["failures"]],
        "started": min(r["started"] for r in reports),
        "finished": max(r["finished"] for r in reports),
    }


def poll_run(
    hubs: Replicas, args: argparse.Namespace, tmp: str, rate: float = 0.0, profile: Path | None = None
) -> dict[str, Any]:
    subjects = [{"format": "email", "email": f"user-{i}@bench.example"} for i in range(args.streams)]
    streams = hubs.create_streams(subjects, None)
    events = args.events if not rate else args.wakeup_events
    per_stream = [events // args.streams + (i < events % args.streams) for i in range(args.streams)]
    count = len(hubs.bases)
    pollers, ready, polled_on = [], [], {}
    for r, base in enumerate(hubs.bases):
        mine = range(r, args.streams, count)
        for i in mine:
            polled_on[streams[i]["stream_id"]] = r
        ready.append(h.ready_file(tmp, f"poller-{r}"))
        plan = {
            "token": hubs.token("bench", "ssf.manage"),
            "poll_urls": [base + "/ssf/poll/" + streams[i]["stream_id"] for i in mine],
            "expected": sum(per_stream[i] for i in mine),
            "max_events": 100,
            "limit": 180,
            "ready": str(ready[-1]),
        }
        pollers.append(h.Worker("poller", plan, tmp, cpu=UNPINNED))
    h.wait_ready(ready, pollers)
    before = hubs.cpu_seconds()
    arrived: dict[str, float] = {}
    duplicates = 0
    with h.profiled(hubs.procs[0].pid, profile):
        reports = [w.report() for w in emitters(hubs, subjects, events, rate, tmp)]
        for poller in pollers:
            report = poller.report()
            if report["errors"] or report["timed_out"]:
                raise RuntimeError(f"poller failed: timed out {report['timed_out']}, {report['errors'][:3]}")
            arrived.update(report["arrived"])
            duplicates += report["duplicates"]
    emitted = merged(reports)
    figures = h.delivery_figures(emitted, arrived)
    figures.update(duplicates=duplicates, hub_cpu_s=hubs.cpu_seconds() - before, hub_rss_kib=hubs.rss_kib())
    if rate:  # which replica queued each SET (its emitter's) against which one held the poll
        same: list[float] = []
        cross: list[float] = []
        for emitter, report in enumerate(reports):
            for jti, sid, sent, _acked in report["records"]:
                if jti in arrived:
                    (same if polled_on[sid] == emitter else cross).append((arrived[jti] - sent) * 1000)
        figures.update(
            same_p50_ms=h.percentile(same, 50),
            same_p99_ms=h.percentile(same, 99),
            cross_p50_ms=h.percentile(cross, 50),
            cross_p99_ms=h.percentile(cross, 99),
            cross_sets=len(cross),
        )
    return figures


def push_run(
    hubs: Replicas, args: argparse.Namespace, tmp: str, rbase: str, profile: Path | None = None
) -> dict[str, Any]:
    subjects = [{"format": "email", "email": f"user-{i}@bench.example"} for i in range(args.streams)]
    hubs.create_streams(subjects, rbase)
    before = hubs.cpu_seconds()
    with h.profiled(hubs.procs[0].pid, profile):
        emitted = merged([w.report() for w in emitters(hubs, subjects, args.events, 0.0, tmp)])
        deadline = time.monotonic() + 180
        # Distinct SETs, not POSTs: a duplicate delivery must not end the wait early.
        while int(httpx.get(rbase + "/distinct").text) < len(emitted["records"]):
            if time.monotonic() > deadline:
                raise RuntimeError("push delivery did not finish within 180 s")
            time.sleep(0.01)
    arrived = httpx.get(rbase + "/times", timeout=30).json()
    figures = h.delivery_figures(emitted, arrived)
    figures.update(
        posts=int(httpx.get(rbase + "/count").text),
        hub_cpu_s=hubs.cpu_seconds() - before,
        hub_rss_kib=hubs.rss_kib(),
    )
    figures["duplicates"] = figures["posts"] - figures["arrived_sets"]
    return figures


def one_run(
    args: argparse.Namespace, store: str, count: int, mode: str, profile: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp, contextlib.ExitStack() as stack:
        redis_url = None
        if store == "redis":
            redis_url = stack.enter_context(start_redis(Path(tmp) / "redis", appendonly=True)).url
        elif store == "redis-cluster":  # three masters, no persistence (tests/support/redis.py)
            redis_url = stack.enter_context(start_redis_cluster(Path(tmp) / "cluster")).cluster_url
        hubs = stack.enter_context(Replicas(Path(tmp), store, count, redis_url).running())
        if mode == "push":
            rport = h.free_port()
            receiver = subprocess.Popen(
                [sys.executable, "-m", "tests.bench.receiver", str(rport)], cwd=h.ROOT
            )
            stack.callback(h.stop, receiver)
            h.wait_http(f"http://127.0.0.1:{rport}/count", receiver)
            return push_run(hubs, args, tmp, f"http://127.0.0.1:{rport}", profile)
        return poll_run(hubs, args, tmp, WAKEUP_RATE if mode == "wakeup" else 0.0, profile)


def med(row: dict[str, Any], key: str) -> float:
    return h.spread([s[key] for s in row["samples"]])["median"]


def throughput_table(rows: list[dict[str, Any]]) -> str:
    heads = (
        "mode",
        "store",
        "replicas",
        "SETs/s min/med/max",
        "emit/s",
        "p50 ms",
        "p99 ms",
        "dups",
        "CPU µs/SET",
    )
    cells = []
    for r in rows:
        rates = h.msr([s["sets_per_s"] for s in r["samples"]])
        dups = sum(s["duplicates"] for s in r["samples"])
        cpu = med(r, "hub_cpu_s") / r["samples"][0]["arrived_sets"] * 1e6
        latency = (med(r, "p50_ms"), med(r, "p99_ms"))
        cells.append((r["mode"], r["store"], r["replicas"], rates, med(r, "emit_per_s"), *latency, dups, cpu))
    return h.table(heads, cells)


def wakeup_table(rows: list[dict[str, Any]]) -> str:
    heads = ("store", "replicas", "same p50", "same p99", "other p50", "other p99")
    keys = ("same_p50_ms", "same_p99_ms", "cross_p50_ms", "cross_p99_ms")
    return h.table(heads, [(r["store"], r["replicas"], *(med(r, k) for k in keys)) for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run, 400 events, 20 streams: a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--wakeup-events", type=int, default=400, help="events in the 20/s wake-up scenario")
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument(
        "--configs", default="sqlite:1,redis:1,redis:2", help="STORE:REPLICAS, comma-separated"
    )
    parser.add_argument("--modes", default="poll,push,wakeup")
    parser.add_argument("--out", default=None)
    parser.add_argument("--profile", action="store_true", help="py-spy the first replica in an extra run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.events, args.wakeup_events, args.streams = 1, 400, 60, 20
    started = h.machine()
    rows = []
    for mode in args.modes.split(","):
        for config in args.configs.split(","):
            store, count = config.split(":")
            if args.profile:  # an extra run: sampling slows the hub, so its figures are not counted
                profile = h.RESULTS / f"profiles/replicas-{mode}-{store}-{count}.txt"
                one_run(args, store, int(count), mode, profile)
                print(summarise(profile, title=f"{mode}, {store} x{count}: first replica's profile"))
            samples = [one_run(args, store, int(count), mode) for _ in range(args.runs)]
            rows.append({"mode": mode, "store": store, "replicas": int(count), "samples": samples})
            print(f"{mode} {config}: {h.msr([s['sets_per_s'] for s in samples])} SETs/s", flush=True)

    print(f"\nemit -> deliver: {args.events} events, {args.streams} streams, {ALG}, {args.runs} run(s)")
    print(throughput_table([r for r in rows if r["mode"] != "wakeup"]))
    wakeups = [r for r in rows if r["mode"] == "wakeup"]
    if wakeups:
        print(
            f"\nlong-poll wake-up at {WAKEUP_RATE:.0f} events/s, ms (median of runs; same: polled on the "
            "replica that queued the SET; other: on another replica, woken over pub/sub)"
        )
        print(wakeup_table(wakeups))
    h.write_result("replicas", {"started": started, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
