"""Every benchmark, one after the other.

    .venv/bin/python -m tests.bench.all            # the recorded runs -> tests/bench/results/
    .venv/bin/python -m tests.bench.all --quick    # CI smoke run (tests/check.sh), < 2 minutes

``--quick`` runs each benchmark once with small sizes and writes its JSON to a temporary
directory, so a smoke run never replaces the recorded results. It fails when a benchmark fails
(a crash, a hub that does not start, a SET that never arrives), never on a speed figure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.harness import ROOT

# replicas.py (issue #6) is not here: its --quick alone takes ~100 s of the 2-minute smoke budget.
BENCHMARKS = (
    "floors",
    "ingest_rate",
    "emit_poll",
    "emit_push",
    "scale",
    "push_rate",
    "push_inflight",
    "receivers_latency",
    "receivers_check",
)
# The recorded runs behind tests/bench/README.md's table: each benchmark with these arguments,
# then variants (results under their own names): SQLite NORMAL, 10 SETs per event, a second core.
FULL_ARGS = {"receivers_latency": ["--rate", "100", "--events", "1000", "--runs", "3"]}
VARIANTS = (
    ("emit_poll", ["--algs", "ES256", "--sync", "NORMAL",
                   "--out", "tests/bench/results/emit_poll_normal.json"]),
    ("emit_poll", ["--algs", "ES256,RS256", "--fanout", "10", "--events", "2000",
                   "--out", "tests/bench/results/emit_poll_fanout.json"]),
    # The second core: the same runs with one signing process (hub.keys.signing) on the load's CPU.
    ("emit_poll", ["--signing-processes", "1", "--out", "tests/bench/results/emit_poll_2cores.json"]),
    ("emit_poll", ["--algs", "ES256,RS256", "--fanout", "10", "--events", "2000", "--signing-processes", "1",
                   "--out", "tests/bench/results/emit_poll_fanout_2cores.json"]),
    ("emit_push", ["--signing-processes", "1", "--out", "tests/bench/results/emit_push_2cores.json"]),
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated benchmark names")
    args = parser.parse_args()
    started = time.monotonic()
    timings = []
    names = args.only.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
        if args.quick:
            runs = [(name, ["--quick", "--out", str(Path(tmp) / f"{name}.json")]) for name in names]
        else:
            runs = [(name, FULL_ARGS.get(name, [])) for name in names]
            runs += [(name, extra) for name, extra in VARIANTS if name in names]
        for name, extra in runs:
            argv = [sys.executable, "-m", f"tests.bench.{name}", *extra]
            print(f"\n=== {' '.join(argv[1:])}", flush=True)
            began = time.monotonic()
            code = subprocess.run(argv, cwd=ROOT, check=False).returncode
            timings.append((name, time.monotonic() - began))
            if code != 0:
                sys.exit(f"benchmark {name} failed (exit code {code})")
    print("\n" + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings))
    print(f"all benchmarks done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
