"""Push delivery rate from a real ``ssf-hub serve`` to a fast loopback receiver.

    .venv/bin/python -m tests.bench.push_rate [--quick] [--runs 3] [--events 2000]
        [--streams 1,16] [--transports aiohttp,httpx] [--out tests/bench/results/push_rate.json]

For each transport and stream count: SETs are emitted into paused streams, then the
streams are enabled and the clock runs until the receiver has them all, so the figure
is delivery alone (signing happens at emit). The hub runs on CPU 1 and the receiver on
CPU 0 when ``taskset`` exists. Prints a table (min / median / max SETs/s) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.hub import CAEP, free_port

ROOT = Path(__file__).resolve().parents[2]
SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")
ALICE = {"format": "email", "email": "alice@example.com"}


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if shutil.which("taskset") else argv


def wait_up(url: str, proc: subprocess.Popen[bytes], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early: {proc.args!r}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not up")


def one_run(transport: str, streams: int, events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        rport, hport = free_port(), free_port()
        receiver = subprocess.Popen(
            pinned(0, [sys.executable, "-m", "tests.bench.receiver", str(rport)]), cwd=ROOT
        )
        env = {
            **os.environ,
            "SSF_HUB_PUSH_TRANSPORT": transport,
            "SSF_HUB_SIGNING_ALG": "ES256",
            "SSF_HUB_PUSH_ENDPOINT_RATE": "0",
            "SSF_HUB_LOG_LEVEL": "warning",
        }
        args = [SSF_HUB, "serve", "--port", str(hport), "--data-dir", tmp, "--allow-private-endpoints"]
        hub = subprocess.Popen(pinned(1, args), env=env, cwd=tmp)
        base, rbase = f"http://127.0.0.1:{hport}", f"http://127.0.0.1:{rport}"
        try:
            wait_up(rbase + "/count", receiver)
            wait_up(base + "/healthz", hub)

            def token(sub: str, scope: str) -> str:
                out = subprocess.run(
                    [SSF_HUB, "token", "--data-dir", tmp, "--sub", sub, "--scope", scope],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                return out.stdout.strip()

            manage = {"Authorization": f"Bearer {token('bench', 'ssf.manage')}"}
            admin = {"Authorization": f"Bearer {token('op', 'ssf.admin')}"}
            with httpx.Client(base_url=base, timeout=60) as client:
                ids = []
                for i in range(streams):
                    body = {
                        "events_requested": [CAEP + "session-revoked"],
                        "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": f"{rbase}/s/{i}"},
                    }
                    sid = client.post("/ssf/stream", json=body, headers=manage).json()["stream_id"]
                    client.post(
                        "/ssf/subjects:add", json={"stream_id": sid, "subject": ALICE}, headers=manage
                    )
                    client.post("/ssf/status", json={"stream_id": sid, "status": "paused"}, headers=manage)
                    ids.append(sid)
                for _ in range(events):
                    client.post(
                        "/ssf/admin/events",
                        json={"event": "session-revoked", "subject": ALICE},
                        headers=admin,
                    )
                expected = events * streams
                started = time.perf_counter()
                for sid in ids:
                    client.post("/ssf/status", json={"stream_id": sid, "status": "enabled"}, headers=manage)
                while int(httpx.get(rbase + "/count").text) < expected:
                    if time.perf_counter() - started > 300:
                        raise RuntimeError("delivery did not finish in 300 s")
                    time.sleep(0.005)
                elapsed = time.perf_counter() - started
            return {"transport": transport, "streams": streams, "sets": expected, "seconds": elapsed,
                    "sets_per_s": expected / elapsed}  # fmt: skip
        finally:
            for proc in (hub, receiver):
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run, 300 events: a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--streams", default="1,16")
    parser.add_argument("--transports", default="aiohttp,httpx")
    parser.add_argument("--out", default=str(ROOT / "tests/bench/results/push_rate.json"))
    args = parser.parse_args()
    runs, events = (1, 300) if args.quick else (args.runs, args.events)
    rows = []
    for transport in args.transports.split(","):
        for streams in (int(s) for s in args.streams.split(",")):
            per_stream = max(1, events // streams)
            samples = [one_run(transport, streams, per_stream) for _ in range(runs)]
            rates = [s["sets_per_s"] for s in samples]
            rows.append(
                {"transport": transport, "streams": streams, "sets": samples[0]["sets"], "runs": runs,
                 "min": min(rates), "median": statistics.median(rates), "max": max(rates), "samples": samples}
            )  # fmt: skip
    heads = ("transport", "streams", "SETs", "runs", "min/s", "median/s", "max/s")
    print("\n{:<10} {:>7} {:>6} {:>4} {:>8} {:>9} {:>8}".format(*heads))
    for r in rows:
        print(
            f"{r['transport']:<10} {r['streams']:>7} {r['sets']:>6} {r['runs']:>4} "
            f"{r['min']:>8.0f} {r['median']:>9.0f} {r['max']:>8.0f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "argv": sys.argv,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
