"""Emit -> long poll: events for subjects spread over S poll streams, drained by long-polling
receivers that acknowledge what they got, in other processes.

    .venv/bin/python -m tests.bench.emit_poll [--quick] [--runs 3] [--events 4000] [--streams 100]
        [--algs ES256,RS256] [--concurrency 16] [--pollers 2] [--fanout 1] [--batch 1] [--sync FULL]
        [--profile]

Per run: a fresh ``ssf-hub serve`` (CPU 1, SQLite ``--sync``, default ``FULL``) gets S streams,
each with one subject registered through the API (``--fanout K``: K subjects, so that each
event reaches K streams); poller processes (CPU 0) hold a long poll on every stream; one
emitter process (CPU 0) sends N events, event k for stream k mod S's subject, with
``--concurrency`` requests in flight (``--batch B``: B events per request, the batch form of the
admin emit, so per-request cost can be told from per-SET cost). Figures: SETs delivered per
second from the first emit to the last arrival, the emit rate, latency from sending the emit
to the poller having the SET (p50/p99), the hub's CPU use. ``--profile`` samples the hub with
py-spy during the first run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from tests.bench import harness as h
from tests.bench.profiles import summarise


def one_run(args: argparse.Namespace, alg: str, profile: Path | None) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp,
        h.Hub(
            tmp,
            alg=alg,
            sqlite_synchronous=args.sync,
            signing_processes=args.signing_processes,
            processes=args.processes,
        ) as hub,
    ):
        subjects = [{"format": "email", "email": f"user-{i}@bench.example"} for i in range(args.streams)]
        # Stream i holds users i, i-1, ..., i-fanout+1: an event for user u reaches `fanout` streams.
        held = [[(i - j) % args.streams for j in range(args.fanout)] for i in range(args.streams)]
        streams = hub.create_streams(args.streams, subjects=[[subjects[u] for u in users] for users in held])
        per_user = [
            args.events // args.streams + (u < args.events % args.streams) for u in range(args.streams)
        ]
        per_stream = [sum(per_user[u] for u in users) for users in held]
        pollers, ready = [], []
        for p in range(args.pollers):
            mine = range(p, args.streams, args.pollers)
            ready.append(h.ready_file(tmp, f"poller-{p}"))
            plan = {
                "token": hub.token("bench", "ssf.manage"),
                "poll_urls": [streams[i]["delivery"]["endpoint_url"] for i in mine],
                "expected": sum(per_stream[i] for i in mine),
                "max_events": 100,
                "limit": 120,
                "ready": str(ready[-1]),
            }
            pollers.append(h.Worker("poller", plan, tmp))
        h.wait_ready(ready, pollers)
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
            arrived: dict[str, float] = {}
            duplicates = 0
            for poller in pollers:
                report = poller.report()
                if report["errors"] or report["timed_out"]:
                    raise RuntimeError(
                        f"poller failed: timed out {report['timed_out']}, {report['errors'][:3]}"
                    )
                arrived.update(report["arrived"])
                duplicates += report["duplicates"]
        figures = h.delivery_figures(emitted, arrived)
        busy = h.cpu_seconds(hub.pid) - cpu_before
        figures.update(duplicates=duplicates, hub_cpu_s=busy, hub_rss_kib=h.rss_kib(hub.pid))
        figures["hub_cpu_us_per_set"] = busy / figures["arrived_sets"] * 1e6
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
    parser.add_argument("--pollers", type=int, default=2, help="poller processes")
    parser.add_argument("--fanout", type=int, default=1, help="streams each event reaches (SETs per event)")
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        help="events per emit request (the batch form {events: [...]}): per-request cost apart from per-SET",
    )
    h.add_hub_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.events, args.streams, args.algs = 1, 400, 20, "ES256"
    started = h.machine(busy_seconds=1.0)
    rows = []
    for alg in args.algs.split(","):
        if args.profile:  # an extra run: sampling slows the hub, so its figures are not counted
            fanout = f"-fanout{args.fanout}" if args.fanout > 1 else ""
            profile = h.RESULTS / f"profiles/emit_poll-{alg}-{args.sync}{fanout}.txt"
            one_run(args, alg, profile)
            print(summarise(profile, title=f"emit -> poll, {alg}, SQLite {args.sync}: hub profile"))
        samples = [one_run(args, alg, None) for _ in range(args.runs)]
        rows.append(
            {
                "alg": alg,
                "signing_processes": args.signing_processes,
                "processes": args.processes,
                "sqlite_synchronous": args.sync,
                "events": args.events,
                "streams": args.streams,
                "fanout": args.fanout,
                "batch": args.batch,
                "samples": samples,
            }
        )
    heads = (
        "alg",
        "streams",
        "SETs",
        "SETs/s min/med/max",
        "queued SETs/s med",
        "p50 ms",
        "p99 ms",
        "hub CPU µs/SET",
    )
    print(
        f"\nemit -> long poll, SQLite {args.sync}, {args.fanout} stream(s) per event, "
        f"{args.batch} event(s) per emit request ({args.runs} runs; "
        "latency: median of the runs, from the emit sent)"
    )
    print(
        h.table(
            heads,
            [
                (
                    r["alg"],
                    r["streams"],
                    r["samples"][0]["emitted_sets"],
                    *h.delivery_cells(r["samples"]),
                )
                for r in rows
            ],
        )
    )
    h.write_result("emit_poll", {"started": started, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
