"""Emit -> push: events for subjects spread over S push streams, delivered (RFC 8935) to a
loopback receiver answering 202; then the same with 10 % of the streams' receivers answering
503, where the healthy streams must keep their rate.

    .venv/bin/python -m tests.bench.emit_push [--quick] [--runs 3] [--events 4000] [--streams 100]
        [--algs ES256,RS256] [--concurrency 16] [--failing 0,0.1] [--sync FULL] [--profile]

Per run: a fresh ``ssf-hub serve`` (CPU 1, SQLite ``--sync``, default ``FULL``; push over its default aiohttp
transport, per-endpoint rate cap off) gets S push streams, one subject each, registered through
the API; the receiver (``tests.bench.receiver``) and the emitter run as processes on CPU 0.
Figures cover the healthy streams only: SETs delivered per second from the first emit to the
last arrival, latency from sending the emit to the receiver's 202 (p50/p99), the hub's CPU use.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.bench import harness as h
from tests.bench.profiles import summarise


def one_run(args: argparse.Namespace, alg: str, failing: float, profile: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-push-") as tmp:
        rport = h.free_port()
        rbase = f"http://127.0.0.1:{rport}"
        argv = [sys.executable, "-m", "tests.bench.receiver", str(rport), "--fail-prefix", "/fail/"]
        receiver = subprocess.Popen(h.pinned(h.LOAD_CPU, argv), cwd=h.ROOT)
        try:
            h.wait_http(rbase + "/count", receiver)
            with h.Hub(
                tmp,
                alg=alg,
                push_endpoint_rate=0,
                sqlite_synchronous=args.sync,
                signing_processes=args.signing_processes,
                processes=args.processes,
            ) as hub:
                return measure(args, hub, rbase, failing, profile, tmp)
        finally:
            h.stop(receiver)


def measure(
    args: argparse.Namespace, hub: h.Hub, rbase: str, failing: float, profile: Path | None, tmp: str
) -> dict[str, Any]:
    n_failing = round(args.streams * failing)
    # Failing streams are spread evenly among the healthy ones.
    bad = {round(i / failing) for i in range(n_failing)} if n_failing else set()
    urls = [f"{rbase}/{'fail' if i in bad else 's'}/{i}" for i in range(args.streams)]
    subjects = [{"format": "email", "email": f"user-{i}@bench.example"} for i in range(args.streams)]
    streams = hub.create_streams(args.streams, push_urls=urls, subjects=[[s] for s in subjects])
    bad_ids = {streams[i]["stream_id"] for i in bad}
    plan = {
        "base": hub.base,
        "token": hub.token("bench-op", "ssf.admin"),
        "subjects": subjects,
        "events": args.events,
        "concurrency": args.concurrency,
        "batch": args.batch,
    }
    cpu_before = h.cpu_seconds(hub.pid)
    with hub.profiled(profile):
        emitted = h.Worker("emitter", plan, tmp).report()
        healthy = [r for r in emitted["records"] if r[1] not in bad_ids]
        deadline = time.monotonic() + 120
        while int(httpx.get(rbase + "/distinct").text) < len(healthy):
            if time.monotonic() > deadline:
                raise RuntimeError("push delivery did not finish within 120 s")
            time.sleep(0.01)
    busy = h.cpu_seconds(hub.pid) - cpu_before
    arrived = httpx.get(rbase + "/times", timeout=30).json()
    figures = h.delivery_figures({**emitted, "records": healthy}, arrived)
    figures.update(
        failing_streams=len(bad),
        failed_posts=int(httpx.get(rbase + "/failed").text),
        hub_cpu_s=busy,
        hub_rss_kib=h.rss_kib(hub.pid),
        hub_cpu_us_per_set=busy / figures["arrived_sets"] * 1e6,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run, 400 events, 20 streams: a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--algs", default="ES256,RS256")
    parser.add_argument("--concurrency", type=int, default=16, help="emits in flight")
    parser.add_argument("--failing", default="0,0.1", help="shares of streams whose receiver answers 503")
    parser.add_argument("--batch", type=int, default=1, help="events per emit request (the batch form)")
    h.add_hub_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.events, args.streams, args.algs = 1, 400, 20, "ES256"
    started = h.machine(busy_seconds=1.0)
    rows = []
    for alg in args.algs.split(","):
        for failing in (float(f) for f in args.failing.split(",")):
            if args.profile and not failing:  # an extra run: sampling slows the hub, not counted
                profile = h.RESULTS / f"profiles/emit_push-{alg}-{args.sync}.txt"
                one_run(args, alg, failing, profile)
                print(summarise(profile, title=f"emit -> push, {alg}, SQLite {args.sync}: hub profile"))
            samples = [one_run(args, alg, failing, None) for _ in range(args.runs)]
            rows.append(
                {
                    "alg": alg,
                    "signing_processes": args.signing_processes,
                    "processes": args.processes,
                    "batch": args.batch,
                    "sqlite_synchronous": args.sync,
                    "failing": failing,
                    "streams": args.streams,
                    "samples": samples,
                }
            )
    heads = ("alg", "failing", "healthy SETs", "SETs/s min/med/max", "queued SETs/s med", "p50 ms", "p99 ms",
             "hub CPU µs/SET")  # fmt: skip
    print(
        f"\nemit -> push, SQLite {args.sync}, healthy streams only ({args.runs} runs; "
        "latency: median of the runs, from the emit sent)"
    )
    print(
        h.table(
            heads,
            [
                (
                    r["alg"],
                    f"{r['samples'][0]['failing_streams']}/{r['streams']}",
                    r["samples"][0]["emitted_sets"],
                    *h.delivery_cells(r["samples"]),
                )
                for r in rows
            ],
        )
    )
    h.write_result("emit_push", {"started": started, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
