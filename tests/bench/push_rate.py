"""Push delivery rate from a real ``ssf-hub serve`` to a fast loopback receiver.

    .venv/bin/python -m tests.bench.push_rate [--quick] [--runs 3] [--events 2000]
        [--streams 1,16] [--transports aiohttp,httpx] [--profile] [--out FILE]

For each transport and stream count: SETs are emitted into paused streams, then the
streams are enabled and the clock runs until the receiver has them all, so the figure
is delivery alone (signing happens at emit). The hub runs on CPU 1 and the receiver on
CPU 0 when ``taskset`` exists. Prints a table (min / median / max SETs/s) and writes JSON.
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

ALICE = {"format": "email", "email": "alice@example.com"}


def one_run(transport: str, streams: int, events: int, profile: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        rport = h.free_port()
        rbase = f"http://127.0.0.1:{rport}"
        receiver = subprocess.Popen(
            h.pinned(h.LOAD_CPU, [sys.executable, "-m", "tests.bench.receiver", str(rport)]), cwd=h.ROOT
        )
        try:
            h.wait_http(rbase + "/count", receiver)
            with h.Hub(tmp, push_transport=transport, push_endpoint_rate=0) as hub:
                urls = [f"{rbase}/s/{i}" for i in range(streams)]
                ids = [
                    s["stream_id"]
                    for s in hub.create_streams(streams, push_urls=urls, subjects=[[ALICE]] * streams)
                ]
                manage, admin = hub.auth("bench", "ssf.manage"), hub.auth("op", "ssf.admin")
                with httpx.Client(base_url=hub.base, timeout=60) as client:
                    for sid in ids:
                        client.post(
                            "/ssf/status", json={"stream_id": sid, "status": "paused"}, headers=manage
                        )
                    for _ in range(events):
                        body = {"event": "session-revoked", "subject": ALICE}
                        client.post("/ssf/admin/events", json=body, headers=admin).raise_for_status()
                    expected = events * streams
                    with hub.profiled(profile):
                        started = time.perf_counter()
                        for sid in ids:
                            body = {"stream_id": sid, "status": "enabled"}
                            client.post("/ssf/status", json=body, headers=manage)
                        while int(httpx.get(rbase + "/distinct").text) < expected:
                            if time.perf_counter() - started > 300:
                                raise RuntimeError("delivery did not finish in 300 s")
                            time.sleep(0.005)
                        elapsed = time.perf_counter() - started
            return {"transport": transport, "streams": streams, "sets": expected, "seconds": elapsed,
                    "sets_per_s": expected / elapsed}  # fmt: skip
        finally:
            h.stop(receiver)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run, 300 events: a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--streams", default="1,16")
    parser.add_argument("--transports", default="aiohttp,httpx")
    parser.add_argument("--profile", action="store_true", help="py-spy the hub's first delivery window")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    runs, events = (1, 300) if args.quick else (args.runs, args.events)
    started = h.machine(busy_seconds=1.0)
    rows = []
    for transport in args.transports.split(","):
        for streams in (int(s) for s in args.streams.split(",")):
            per_stream = max(1, events // streams)
            if args.profile:  # an extra run: sampling slows the hub, so its figures are not counted
                profile = h.RESULTS / f"profiles/push_rate-{transport}-{streams}.txt"
                one_run(transport, streams, per_stream, profile)
                print(summarise(profile, title=f"push delivery, {transport}, {streams} streams: hub profile"))
            samples = [one_run(transport, streams, per_stream) for _ in range(runs)]
            rates = [s["sets_per_s"] for s in samples]
            rows.append(
                {"transport": transport, "streams": streams, "sets": samples[0]["sets"], "runs": runs,
                 "min": min(rates), "median": statistics.median(rates), "max": max(rates), "samples": samples}
            )  # fmt: skip
    print(f"\npush delivery alone: SETs queued in paused streams, then enabled ({runs} runs)")
    print(
        h.table(
            ("transport", "streams", "SETs", "SETs/s min/med/max"),
            [
                (r["transport"], r["streams"], r["sets"], h.msr([s["sets_per_s"] for s in r["samples"]]))
                for r in rows
            ],
        )
    )
    h.write_result("push_rate", {"started": started, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
