"""Floors: what this machine allows, measured in the same session as the hub's figures. They
are the denominators of the ratios in ``tests/bench/README.md``.

    .venv/bin/python -m tests.bench.floors [--quick] [--runs 3] [--seconds 5]

Rates are per CPU-second of the measured process (what one core allows even while other
processes take turns on it; wall-clock rates are kept too), except SQLite commits, which wait
on the disk and are per wall-clock second.

1. JWS sign / verify per second, RS256, ES256, EdDSA, joserfc and raw ``cryptography``, and
   SQLite commits per second (1 row per commit at FULL and NORMAL, 100 rows per commit at
   FULL): ``tests.bench.micro`` on CPU 1, one process per run.
2. A bare Starlette endpoint (``tests.bench.floor_app`` under uvicorn on CPU 1): ``POST /null``
   and ``POST /verify/{ES256,RS256}`` (one signature verify per request), loaded from CPU 0 by
   ``wrk -t1 -c32`` when it is installed, else by ``tests.bench.loadgen`` (aiohttp, 32 in
   flight; the load generator may then be what limits). Requests per server CPU-second, and
   per second.
3. HTTP client POSTs/s to a bare endpoint (``tests.bench.receiver`` on CPU 0; the client, on
   CPU 1, is what is measured): httpx, aiohttp, and httpx over aiohttp's transport (the hub's
   push client).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.bench import harness as h

CLIENTS = (("httpx", 8), ("httpx", 32), ("aiohttp", 32), ("httpx-aiohttp", 32))
_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def micro_floors(runs: int, seconds: float, tmp: str) -> list[dict[str, Any]]:
    plan = {"seconds": seconds, "algs": ["RS256", "ES256", "EdDSA"], "sqlite_dir": tmp}
    reports = [h.Worker("micro", plan, tmp, cpu=h.HUB_CPU).report() for _ in range(runs)]
    rows = []
    for i, cell in enumerate(reports[0]["cells"]):
        rates = [r["cells"][i]["per_s"] for r in reports]
        wall = [r["cells"][i]["per_wall_s"] for r in reports]
        rows.append({"group": cell["group"], "what": cell["what"], "per_s": rates, "per_wall_s": wall,
                     **h.spread(rates)})  # fmt: skip
    return rows


def load_once(url: str, body: str, seconds: float, tmp: str) -> tuple[float, int, str]:
    """Requests/s on ``url`` for ``seconds``, the non-2xx count, and which tool loaded it."""
    if shutil.which("wrk"):
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/secevent+jwt"\n'
            f"wrk.body = [[{body}]]\n"
        )
        argv = ["wrk", "-t1", "-c32", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
        out = subprocess.run(h.pinned(h.LOAD_CPU, argv), capture_output=True, text=True, check=True).stdout
        rate = _WRK_RATE.search(out)
        if rate is None:
            raise RuntimeError(f"unexpected wrk output: {out}")
        bad = _WRK_NON2XX.search(out)
        return float(rate[1]), int(bad[1]) if bad else 0, "wrk -t1 -c32"
    plan = {"url": url, "body": body, "client": "aiohttp", "concurrency": 32, "seconds": seconds}
    report = h.Worker("loadgen", plan, tmp).report()
    return report["requests"] / report["seconds"], report["non_2xx"], "loadgen aiohttp -c32"


def server_floors(runs: int, seconds: float, tmp: str) -> list[dict[str, Any]]:
    port = h.free_port()
    argv = [sys.executable, "-m", "uvicorn", "tests.bench.floor_app:app", "--port", str(port),
            "--no-access-log", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(h.pinned(h.HUB_CPU, argv), cwd=h.ROOT)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        h.wait_http(base + "/set/ES256", server)
        es256, rs256 = (httpx.get(f"{base}/set/{alg}").text for alg in ("ES256", "RS256"))
        for path, body in (("/null", es256), ("/verify/ES256", es256), ("/verify/RS256", rs256)):
            rates, per_cpu, tool = [], [], ""
            for _ in range(runs):
                cpu = h.cpu_seconds(server.pid)
                rate, bad, tool = load_once(base + path, body, seconds, tmp)
                if bad:
                    raise RuntimeError(f"{bad} non-2xx answers from {path}")
                per_cpu.append(rate * seconds / max(h.cpu_seconds(server.pid) - cpu, 1e-9))
                rates.append(rate)
            rows.append({"group": "http", "what": f"Starlette POST {path} ({tool})", "per_s": per_cpu,
                         "per_wall_s": rates, **h.spread(per_cpu)})  # fmt: skip
    finally:
        h.stop(server)
    return rows


def client_floors(runs: int, seconds: float, tmp: str) -> list[dict[str, Any]]:
    port = h.free_port()
    receiver = subprocess.Popen(
        h.pinned(h.LOAD_CPU, [sys.executable, "-m", "tests.bench.receiver", str(port)])
    )
    rows = []
    try:
        h.wait_http(f"http://127.0.0.1:{port}/count", receiver)
        body = "x" * 720  # an ES256 SET's size
        for client, concurrency in CLIENTS:
            plan = {"url": f"http://127.0.0.1:{port}/s/0", "body": body, "client": client,
                    "concurrency": concurrency, "seconds": seconds,
                    "headers": {"Content-Type": "application/secevent+jwt"}}  # fmt: skip
            reports = [h.Worker("loadgen", plan, tmp, cpu=h.HUB_CPU).report() for _ in range(runs)]
            rates = [r["requests"] / r["cpu_s"] for r in reports]
            wall = [r["requests"] / r["seconds"] for r in reports]
            rows.append({"group": "client", "what": f"{client} POST, {concurrency} in flight", "per_s": rates,
                         "per_wall_s": wall, **h.spread(rates)})  # fmt: skip
    finally:
        h.stop(receiver)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run, 0.3 s per cell: a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="per HTTP cell (JWS/SQLite cells: 1/5 of it)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds = 1, 1.0
    started = h.machine(busy_seconds=1.0)
    with tempfile.TemporaryDirectory(prefix="bench-floors-") as tmp:  # same disk as the hubs' data
        rows = micro_floors(args.runs, args.seconds / 5, tmp)
        rows += server_floors(args.runs, args.seconds, tmp)
        rows += client_floors(args.runs, args.seconds, tmp)
    print(
        f"\nfloors ({args.runs} runs; the measured process on CPU 1; per CPU-second of it, SQLite per second)"
    )
    print(
        h.table(
            ("floor", "per CPU-s min/med/max", "per wall-clock s, median"),
            [(r["what"], h.msr(r["per_s"]), h.spread(r["per_wall_s"])["median"]) for r in rows],
        )
    )
    h.write_result("floors", {"started": started, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
