"""Run the fault matrix: a table on stdout, JSON in a file, exit 1 when a promise is broken.

    .venv/bin/python -m tests.faults [--quick] [--only serve-kill,redis-outage] [--out FILE]

``--quick`` is the CI size (600 SETs, 3 kills, 3 s outages, about a minute in all); the
default is the issue's size (10,000 SETs, 10 kills, 60 s outages). Every scenario is bounded in
time and stops by itself. Promises (README "Reliability"): lost is 0 in every scenario except
``redis-kill-everysec`` (AOF fsync once a second may lose up to a second of writes), and every
acknowledged SET is delivered once the fault ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.faults.scenarios import FULL, MAY_LOSE, QUICK, SCENARIOS, Size

DEFAULT_OUT = Path("tests/bench/results/faults.json")
COLUMNS = ("scenario", "acknowledged", "delivered", "lost", "duplicates", "faults", "recover_s", "verdict")


def verdict(name: str, row: dict[str, Any]) -> str:
    if "skipped" in row:
        return "skipped"
    if "error" in row:
        return "ERROR"
    if row["recover_s"] is None:
        return "FAIL (not caught up)"
    if row["lost"] and name not in MAY_LOSE:
        return "FAIL (lost)"
    if set(row.get("refusals", {})) - {"503", "no answer"}:
        return "FAIL (refused other than 503)"
    if row.get("promoted") is False:
        return "FAIL (no failover happened)"
    if row.get("hub_alive") is False:
        return "FAIL (hub died)"
    return "ok"


async def run(names: list[str], size: Size) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name in names:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"ssf-fault-{name}-") as tmp:
            try:
                row = await asyncio.wait_for(SCENARIOS[name](size, Path(tmp)), timeout=600)
            except Exception as exc:  # a scenario that breaks is a row, not the end of the run
                row = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        row["seconds"] = round(time.monotonic() - started, 1)
        row["verdict"] = verdict(name, row)
        rows[name] = row
        print(_line(name, row), flush=True)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _line(name: str, row: dict[str, Any]) -> str:
    cells = [name, *(_cell(row.get(c)) for c in COLUMNS[1:])]
    note = row.get("error") or row.get("skipped") or ""
    return _row(cells) + (f"  {note}" if note else "")


def _row(cells: list[str] | tuple[str, ...]) -> str:
    return "  ".join(f"{c:>12}" if i else f"{c:<20}" for i, c in enumerate(cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="the CI size")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    size = QUICK if args.quick else FULL
    print(f"fault matrix ({'quick' if args.quick else 'full'}: {size.sets} SETs, {size.kills} kills, "
          f"{size.outage:g} s outages)")  # fmt: skip
    print(_row(COLUMNS))
    rows = asyncio.run(run(names, size))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python -m tests.faults " + " ".join(argv if argv is not None else sys.argv[1:]),
            "size": size.__dict__, "python": platform.python_version(), "at": time.time()}  # fmt: skip
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    broken = [n for n, r in rows.items() if r["verdict"] not in ("ok", "skipped")]
    if broken:
        print(f"broken promises: {', '.join(broken)}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
