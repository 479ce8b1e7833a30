"""Scale: routing cost against the number of streams and subjects that do NOT match an event,
and 1,000 long polls held by one hub process.

    .venv/bin/python -m tests.bench.scale [--quick] [--runs 3] [--streams 10,100,1000,10000]
        [--subjects-per-stream 100] [--events 2000] [--polls 1000] [--profile]

Routing: for each stream count S, a data dir is seeded with S poll streams and 100 subjects
each (10,000 streams = 1,000,000 subjects) through ``hub.store`` before the hub starts (see
``tests.bench.seed``: the API would take far too long). Then ``ssf-hub serve`` (CPU 1, SQLite
``FULL``) is started and an emitter process (CPU 0, 8 in flight) sends events for a subject
registered on exactly one stream. Figures: events/s, hub CPU µs per event (flat = routing does
not grow with the streams that do not match), the hub's RSS after start and after the burst.

Long polls: ``--polls`` poll streams, one subject each plus one subject they all share; poller
processes hold one long poll per stream. Then (1) events at 50/s for one stream each: wake-up
latency from the emit sent to the poller having the SET; (2) events for the shared subject:
each wakes every poll (fan-out), latency to each poller. RSS before and with the polls held.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from tests.bench import harness as h
from tests.bench.profiles import summarise
from tests.bench.seed import seed_sync, stream_id, subject

EVERYONE = {"format": "email", "email": "everyone@bench.example"}


def routing(args: argparse.Namespace, streams: int, runs: int, profile: Path | None) -> dict[str, Any]:
    port = h.free_port()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        seconds = seed_sync(Path(tmp), issuer=f"http://127.0.0.1:{port}", streams=streams,
                            subjects_per_stream=args.subjects_per_stream)  # fmt: skip
        samples = []
        # With a profile, run 0 is an extra one: sampling slows the hub, so it is not counted.
        for run in range(runs + (profile is not None)):
            with h.Hub(tmp, port=port) as hub:
                rss_idle = h.rss_kib(hub.pid)
                plan = {
                    "base": hub.base,
                    "token": hub.token("bench-op", "ssf.admin"),
                    "subjects": [subject(0, 0)],  # registered on stream 0 only
                    "events": args.events,
                    "concurrency": 8,
                }
                cpu = h.cpu_seconds(hub.pid)
                with hub.profiled(profile if run == 0 else None):
                    emitted = h.Worker("emitter", plan, tmp).report()
                if profile is not None and run == 0:
                    continue
                busy = h.cpu_seconds(hub.pid) - cpu
                if emitted["failures"] or len(emitted["records"]) != args.events:
                    raise RuntimeError(f"emits failed or went to other streams: {emitted['failures'][:3]}")
                elapsed = emitted["finished"] - emitted["started"]
                samples.append({
                    "events_per_s": args.events / elapsed,
                    "hub_cpu_us_per_event": busy / args.events * 1e6,
                    "emit_p50_ms": h.percentile([(r[3] - r[2]) * 1000 for r in emitted["records"]], 50),
                    "rss_idle_kib": rss_idle,
                    "rss_after_kib": h.rss_kib(hub.pid),
                })  # fmt: skip
        return {"streams": streams, "subjects": streams * args.subjects_per_stream, "seed_s": seconds,
                "samples": samples}  # fmt: skip


def long_polls(args: argparse.Namespace, runs: int, profile: Path | None) -> dict[str, Any]:
    port, polls, pollers = h.free_port(), args.polls, 2
    wake_events, fanouts = (50, 1) if args.quick else (200, 3)
    targets = [(k * 37) % polls for k in range(wake_events)]
    samples: list[dict[str, Any]] = []
    # With a profile, run 0 is an extra one: sampling slows the hub, so it is not counted.
    for run in range(runs + (profile is not None)):
        # A fresh file per run: SETs a poller got but never acknowledged would come back.
        with tempfile.TemporaryDirectory(prefix="bench-polls-") as tmp:
            seed_sync(Path(tmp), issuer=f"http://127.0.0.1:{port}", streams=polls, subjects_per_stream=1,
                      everyone=EVERYONE)  # fmt: skip
            with h.Hub(tmp, port=port) as hub, hub.profiled(profile if run == 0 else None):
                rss_idle = h.rss_kib(hub.pid)
                workers, ready = [], []
                for p in range(pollers):
                    mine = range(p, polls, pollers)
                    ready.append(h.ready_file(tmp, f"polls-{p}-{run}"))
                    plan = {
                        "token": hub.token("bench", "ssf.manage"),
                        "poll_urls": [f"{hub.base}/ssf/poll/{stream_id(i)}" for i in mine],
                        "expected": sum(t % pollers == p for t in targets) + fanouts * len(mine),
                        "max_events": 100,
                        "limit": 120,
                        "ready": str(ready[-1]),
                    }
                    workers.append(h.Worker("poller", plan, tmp))
                h.wait_ready(ready, workers)
                rss_held = h.rss_kib(hub.pid)
                admin = hub.token("bench-op", "ssf.admin")
                one = {"base": hub.base, "token": admin, "subjects": [subject(t, 0) for t in targets],
                       "events": wake_events, "concurrency": 4, "rate": 50}  # fmt: skip
                woken = h.Worker("emitter", one, tmp).report()
                fan = {"base": hub.base, "token": admin, "subjects": [EVERYONE], "events": fanouts,
                       "concurrency": 1, "rate": 1}  # fmt: skip
                fanned = h.Worker("emitter", fan, tmp).report()
                arrived: dict[str, float] = {}
                for worker in workers:
                    report = worker.report()
                    if report["errors"] or report["timed_out"]:
                        raise RuntimeError(
                            f"poller failed: timed out {report['timed_out']}, {report['errors'][:3]}"
                        )
                    arrived.update(report["arrived"])
                rss_after = h.rss_kib(hub.pid)
            if profile is not None and run == 0:
                continue
            one_fig, fan_fig = h.delivery_figures(woken, arrived), h.delivery_figures(fanned, arrived)
            samples.append({
                "rss_idle_kib": rss_idle, "rss_polls_held_kib": rss_held, "rss_after_kib": rss_after,
                "wake_p50_ms": one_fig["p50_ms"], "wake_p99_ms": one_fig["p99_ms"],
                "fanout_events": fanouts, "fanout_sets": fan_fig["arrived_sets"],
                "fanout_p50_ms": fan_fig["p50_ms"], "fanout_p99_ms": fan_fig["p99_ms"],
                "fanout_max_ms": fan_fig["max_ms"],
            })  # fmt: skip
    return {"polls": polls, "samples": samples}


def print_polls(polls: dict[str, Any], runs: int) -> None:
    s = polls["samples"]
    print(f"\n{polls['polls']} long polls held by one hub ({runs} runs; medians)")
    print(h.table(
        ("RSS idle MiB", "RSS held MiB", "KiB per poll", "wake p50 ms", "wake p99 ms", "fan-out SETs",
         "fan-out p50 ms", "fan-out p99 ms"),
        [(h.spread([x["rss_idle_kib"] / 1024 for x in s])["median"],
          h.spread([x["rss_polls_held_kib"] / 1024 for x in s])["median"],
          h.spread([(x["rss_polls_held_kib"] - x["rss_idle_kib"]) / polls["polls"] for x in s])["median"],
          h.spread([x["wake_p50_ms"] for x in s])["median"],
          h.spread([x["wake_p99_ms"] for x in s])["median"],
          s[0]["fanout_sets"], h.spread([x["fanout_p50_ms"] for x in s])["median"],
          h.spread([x["fanout_p99_ms"] for x in s])["median"])],
    ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run; 10 and 1,000 streams, 10 subjects each")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--streams", default="10,100,1000,10000")
    parser.add_argument("--subjects-per-stream", type=int, default=100)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--polls", type=int, default=1000)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the hub in extra runs: largest routing, long polls"
    )
    parser.add_argument("--skip-polls", action="store_true", help="routing only")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.streams, args.subjects_per_stream, args.events = 1, "10,1000", 10, 300
    started = h.machine(busy_seconds=1.0)
    counts = [int(s) for s in args.streams.split(",")]
    rows = []
    for streams in counts:
        profile = (
            h.RESULTS / "profiles/scale-routing.txt" if args.profile and streams == max(counts) else None
        )
        rows.append(routing(args, streams, args.runs, profile))
        if profile is not None:
            print(summarise(profile, title=f"routing with {streams} streams: hub profile"))
    profile = h.RESULTS / "profiles/scale-long-polls.txt" if args.profile else None
    polls = None if args.skip_polls else long_polls(args, args.runs, profile)
    if polls is not None and profile is not None:
        print(summarise(profile, title=f"{args.polls} long polls: hub profile"))

    print(f"\nrouting: events for a subject on 1 stream, the others do not match ({args.runs} runs, "
          f"seeded through hub.store before the hub started)")  # fmt: skip
    print(h.table(
        ("streams", "subjects", "events/s min/med/max", "hub CPU µs/event", "emit p50 ms", "RSS idle MiB",
         "RSS after MiB"),
        [(r["streams"], r["subjects"], h.msr([s["events_per_s"] for s in r["samples"]]),
          h.spread([s["hub_cpu_us_per_event"] for s in r["samples"]])["median"],
          h.spread([s["emit_p50_ms"] for s in r["samples"]])["median"],
          h.spread([s["rss_idle_kib"] / 1024 for s in r["samples"]])["median"],
          h.spread([s["rss_after_kib"] / 1024 for s in r["samples"]])["median"]) for r in rows],
    ))  # fmt: skip
    per_stream = (
        (rows[-1]["samples"][0]["rss_after_kib"] - rows[0]["samples"][0]["rss_after_kib"])
        * 1024
        / max(1, counts[-1] - counts[0])
    )
    print(f"RSS per idle stream (largest vs smallest, first run): {per_stream:,.0f} bytes")
    if polls is not None:
        print_polls(polls, args.runs)
    data = {"started": started, "routing": rows, "long_polls": polls, "rss_per_idle_stream_bytes": per_stream,
            "seeded": "streams and subjects written through hub.store before the hub started"}  # fmt: skip
    h.write_result("scale", data, args.out)


if __name__ == "__main__":
    main()
