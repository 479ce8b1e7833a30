"""One push stream to a receiver that answers after a delay (a WAN round trip): SETs/s with
strict stream order (one SET in flight) against per-subject order (several in flight).

    .venv/bin/python -m tests.bench.push_inflight [--quick] [--runs 3] [--events 2000]
        [--delay 0.02] [--subjects 64] [--orders stream,subject] [--in-flight 16]
        [--endpoint-concurrency N] [--profile] [--out FILE]

Per run: a fresh ``ssf-hub serve`` (CPU 1) gets one push stream with ``--subjects``
subjects; events for them, round robin, are emitted while the stream is paused, then it is
enabled and the clock runs until the receiver (``tests.bench.receiver --delay``, CPU 0) has
them all, so the figure is delivery alone. Stream order sends one SET per round trip, so it
gets ``--events / 8`` events (a rate needs no more). Prints a table (min / median / max
SETs/s, the most requests the receiver saw open at once, the hub's CPU per SET and its
share of one core while delivering) and writes JSON.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.bench import harness as h
from tests.bench.profiles import summarise


def one_run(args: argparse.Namespace, order: str, events: int, profile: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-inflight-") as tmp:
        rport = h.free_port()
        rbase = f"http://127.0.0.1:{rport}"
        argv = [sys.executable, "-m", "tests.bench.receiver", str(rport), "--delay", str(args.delay)]
        receiver = subprocess.Popen(h.pinned(h.LOAD_CPU, argv), cwd=h.ROOT)
        try:
            h.wait_http(rbase + "/count", receiver)
            caps = (
                {"push_endpoint_concurrency": args.endpoint_concurrency} if args.endpoint_concurrency else {}
            )
            with h.Hub(
                tmp, push_endpoint_rate=0, push_order=order, push_stream_in_flight=args.in_flight, **caps
            ) as hub:
                subjects = [
                    {"format": "email", "email": f"user-{i}@bench.example"} for i in range(args.subjects)
                ]
                (stream,) = hub.create_streams(1, push_urls=[rbase + "/s/0"], subjects=[subjects])
                sid = stream["stream_id"]
                manage, admin = hub.auth("bench", "ssf.manage"), hub.auth("op", "ssf.admin")
                with httpx.Client(base_url=hub.base, timeout=60) as client:
                    status = {"stream_id": sid, "status": "paused"}
                    client.post("/ssf/status", json=status, headers=manage).raise_for_status()
                    for i in range(events):
                        body = {"event": "session-revoked", "subject": subjects[i % len(subjects)]}
                        client.post("/ssf/admin/events", json=body, headers=admin).raise_for_status()
                    cpu_before = h.cpu_seconds(hub.pid)
                    with hub.profiled(profile):
                        started = time.perf_counter()
                        status = {"stream_id": sid, "status": "enabled"}
                        client.post("/ssf/status", json=status, headers=manage).raise_for_status()
                        while int(httpx.get(rbase + "/distinct").text) < events:
                            if time.perf_counter() - started > 300:
                                raise RuntimeError("delivery did not finish in 300 s")
                            time.sleep(0.005)
                        elapsed = time.perf_counter() - started
                    cpu = h.cpu_seconds(hub.pid) - cpu_before
                max_open = int(httpx.get(rbase + "/max_open").text)
            return {"order": order, "sets": events, "seconds": elapsed, "sets_per_s": events / elapsed,
                    "max_open": max_open, "hub_cpu_us_per_set": cpu / events * 1e6,
                    "hub_cpu_share": cpu / elapsed}  # fmt: skip
        finally:
            h.stop(receiver)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run, 400 events: a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--delay", type=float, default=0.02, help="the receiver's answer delay in seconds")
    parser.add_argument("--subjects", type=int, default=64)
    parser.add_argument("--orders", default="stream,subject")
    parser.add_argument("--in-flight", type=int, default=16, help="the hub's push_stream_in_flight")
    parser.add_argument(
        "--endpoint-concurrency",
        type=int,
        default=0,
        help="the hub's push_endpoint_concurrency (0: its default)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the hub's first delivery window")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    runs, events = (1, 400) if args.quick else (args.runs, args.events)
    started = h.machine(busy_seconds=1.0)
    rows = []
    for order in args.orders.split(","):
        count = max(1, events // 8) if order == "stream" else events
        if args.profile:  # an extra run: sampling slows the hub, so its figures are not counted
            profile = h.RESULTS / f"profiles/push_inflight-{order}.txt"
            one_run(args, order, count, profile)
            print(summarise(profile, title=f"one push stream, {order} order: hub profile"))
        samples = [one_run(args, order, count) for _ in range(runs)]
        rates = [s["sets_per_s"] for s in samples]
        rows.append(
            {"order": order, "in_flight": 1 if order == "stream" else args.in_flight, "sets": count,
             "delay_s": args.delay, "subjects": args.subjects, "runs": runs, "min": min(rates),
             "median": statistics.median(rates), "max": max(rates), "samples": samples}
        )  # fmt: skip
    print(
        f"\none push stream, receiver answering after {args.delay * 1000:g} ms, "
        f"{args.subjects} subjects ({runs} runs)"
    )
    print(
        h.table(
            (
                "push_order",
                "in flight",
                "SETs",
                "SETs/s min/med/max",
                "max open at receiver",
                "hub CPU µs/SET",
                "hub CPU busy",
            ),
            [
                (
                    r["order"],
                    r["in_flight"],
                    r["sets"],
                    h.msr([s["sets_per_s"] for s in r["samples"]]),
                    max(s["max_open"] for s in r["samples"]),
                    f"{statistics.median(s['hub_cpu_us_per_set'] for s in r['samples']):,.0f}",
                    f"{statistics.median(s['hub_cpu_share'] for s in r['samples']):.0%}",
                )
                for r in rows
            ],
        )
    )
    h.write_result("push_inflight", {"started": started, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
