"""The results table of ``tests/bench/README.md``, from the JSON files in tests/bench/results/:
each figure with the command that produced it, its floor and the ratio to the floor (or to the
issue's target where the target is not a share of a floor).

    .venv/bin/python -m tests.bench.report [--results tests/bench/results]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.bench.harness import RESULTS, fmt, spread

# The results files these tables read.
TABLED = {"floors", "ingest_rate", "emit_poll", "emit_poll_normal", "emit_poll_fanout", "emit_push",
          "push_rate", "push_inflight", "receivers_latency", "scale", "scale_proposed_index",
          "emit_poll_2cores", "emit_poll_fanout_2cores", "emit_push_2cores"}  # fmt: skip
# One core (the hub's) against the same run with a signing process on the second core.
SECOND_CORE = (("emit_poll", "emit_poll_2cores"), ("emit_poll_fanout", "emit_poll_fanout_2cores"),
               ("emit_push", "emit_push_2cores"))  # fmt: skip


def load(results: Path, name: str) -> dict[str, Any]:
    """A benchmark's JSON, or ``{}`` when it has not been run."""
    path = results / f"{name}.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return data


def med(values: Sequence[float]) -> float:
    return spread(values)["median"]


def rng(values: Sequence[float]) -> str:
    s = spread(values)
    return f"**{fmt(s['median'])}** ({fmt(s['min'])} to {fmt(s['max'])})"


def cmd(data: dict[str, Any]) -> str:
    return f"`{data['meta']['command'] if 'meta' in data else data['command']}`"


def floor_of(floors: dict[str, Any], what: str) -> float:
    for row in floors["rows"]:
        if row["what"] == what:
            return float(row["median"])
    raise KeyError(what)


def floors_tool(floors: dict[str, Any]) -> str:
    """Which load generator the HTTP floors were taken with (it is part of their name)."""
    row = next(r for r in floors["rows"] if r["what"].startswith("Starlette POST /null"))
    return str(row["what"].split("(", 1)[1].rstrip(")"))


def client_floor(floors: dict[str, Any]) -> tuple[str, float]:
    best = max((r for r in floors["rows"] if r["group"] == "client"), key=lambda r: r["median"])
    return best["what"], float(best["median"])


def cpu_per_set(row: dict[str, Any]) -> str:
    return fmt(med([s["hub_cpu_us_per_set"] for s in row["samples"]]))


def ratio(value: float, floor: float) -> str:
    return f"{100 * value / floor:.0f} %"


def cores(row: dict[str, Any]) -> str:
    n = row.get("signing_processes", 0)
    return f" + {n} signing process(es) on the 2nd core" if n else ""


def push_rows(
    data: dict[str, Any], floors: dict[str, Any], client_name: str, client_rate: float
) -> list[list[str]]:
    rows = []
    base: dict[str, float] = {}
    for r in data.get("rows", []):
        sign = floor_of(floors, f"JWS {r['alg']} sign, joserfc")
        rate = med([s["sets_per_s"] for s in r["samples"]])
        bad = r["samples"][0]["failing_streams"]
        if not bad:
            base[r["alg"]] = rate
            floor = min(sign, client_rate)
            rows.append([
                f"emit → push (202), {r['alg']}{cores(r)}, {r['streams']} streams: SETs/s "
                f"(hub CPU {cpu_per_set(r)} µs/SET)",
                rng([s["sets_per_s"] for s in r["samples"]]), cmd(data),
                f"min({r['alg']} sign {fmt(sign)}, {client_name} {fmt(client_rate)})",
                ratio(rate, floor), "≥ 50 %",
            ])  # fmt: skip
        else:
            rows.append([
                f"… with {bad}/{r['streams']} receivers answering 503: healthy SETs/s",
                rng([s["sets_per_s"] for s in r["samples"]]), cmd(data), "the same run with none failing",
                ratio(rate, base[r["alg"]]) if r["alg"] in base else "-", "≈ 100 %",
            ])  # fmt: skip
    return rows


def second_core_rows(results: Path) -> list[list[str]]:
    """Each run with a signing process on the second core against the same run without."""
    rows = []
    for one, two in SECOND_CORE:
        base, more = load(results, one), load(results, two)
        for r2 in more.get("rows", []):
            match = [
                r
                for r in base.get("rows", [])
                if (r["alg"], r.get("fanout", 1), r.get("failing", 0))
                == (r2["alg"], r2.get("fanout", 1), r2.get("failing", 0))
            ]
            if not match:
                continue
            rate1 = med([s["sets_per_s"] for s in match[0]["samples"]])
            rate2 = med([s["sets_per_s"] for s in r2["samples"]])
            what = "emit → push" if "push" in one else "emit → long poll"
            failing = f", {r2['failing']} failing" if r2.get("failing") else ""
            rows.append([
                f"{what}, {r2['alg']}, {r2.get('fanout', 1)} per event{failing}: SETs/s, 1 core → "
                f"+1 signing process",
                f"{fmt(rate1)} → **{fmt(rate2)}**", cmd(more), f"{100 * rate2 / rate1 - 100:+.0f} %",
            ])  # fmt: skip
    return rows


def throughput_rows(results: Path, floors: dict[str, Any]) -> list[list[str]]:
    rows = []
    client_name, client_rate = client_floor(floors)
    names = (
        "emit_poll",
        "emit_poll_normal",
        "emit_poll_fanout",
        "emit_poll_2cores",
        "emit_poll_fanout_2cores",
    )
    for name in names:
        data = load(results, name)
        for r in data.get("rows", []):
            sign = floor_of(floors, f"JWS {r['alg']} sign, joserfc")
            rate = med([s["sets_per_s"] for s in r["samples"]])
            rows.append([
                f"emit → long poll, {r['alg']}{cores(r)}, SQLite {r.get('sqlite_synchronous', 'FULL')}, "
                f"{r['streams']} streams, {r.get('fanout', 1)} per event: SETs/s "
                f"(hub CPU {cpu_per_set(r)} µs/SET)",
                rng([s["sets_per_s"] for s in r["samples"]]), cmd(data),
                f"{r['alg']} sign (joserfc) {fmt(sign)}/s", ratio(rate, sign), "≥ 50 %",
            ])  # fmt: skip
    data = load(results, "ingest_rate")
    for r in data.get("rows", []):
        floor = floor_of(floors, f"Starlette POST /verify/{r['alg']} ({floors_tool(floors)})")
        rate = med([s["sets_per_s"] for s in r["samples"]])
        cpu = fmt(med([s["hub_cpu_us_per_set"] for s in r["samples"]]))
        rows.append([
            f"ingest, {r['alg']} upstream, re-issued to {r['streams']} stream(s): SETs/s "
            f"(hub CPU {cpu} µs/SET)",
            rng([s["sets_per_s"] for s in r["samples"]]), cmd(data),
            f"Starlette POST + 1 {r['alg']} verify {fmt(floor)}/s", ratio(rate, floor), "≥ 50 %",
        ])  # fmt: skip
    for data in (load(results, "emit_push"), load(results, "emit_push_2cores")):
        rows += push_rows(data, floors, client_name, client_rate)
    data = load(results, "push_rate")
    for r in data.get("rows", []):
        sign = floor_of(floors, "JWS ES256 sign, joserfc")
        rate = med([s["sets_per_s"] for s in r["samples"]])
        rows.append([
            f"push delivery alone (queued, then enabled), {r['transport']}, {r['streams']} stream(s): SETs/s",
            rng([s["sets_per_s"] for s in r["samples"]]), cmd(data),
            f"min(ES256 sign {fmt(sign)}, {client_name} {fmt(client_rate)})",
            ratio(rate, min(sign, client_rate)), "≥ 50 %",
        ])  # fmt: skip
    data = load(results, "push_inflight")
    for r in data.get("rows", []):
        rate = med([s["sets_per_s"] for s in r["samples"]])
        rows.append([
            f"one push stream, receiver answering after {r['delay_s'] * 1000:g} ms, push_order {r['order']} "
            f"({r['in_flight']} in flight, {r['subjects']} subjects): SETs/s",
            rng([s["sets_per_s"] for s in r["samples"]]), cmd(data),
            "target 400/s", ratio(rate, 400.0), "≥ 100 %" if r["order"] == "subject" else "-",
        ])  # fmt: skip
    return rows


def latency_rows(results: Path) -> list[list[str]]:
    rows = []
    data = load(results, "receivers_latency")
    for mode, target in (("push", 50.0), ("poll", 100.0)):
        runs = [r for r in data.get("results", []) if r["mode"] == mode and r.get("rate")]
        if runs:
            p99 = [r["from_emit_sent"]["p99_ms"] for r in runs]
            p50 = [r["from_emit_sent"]["median_ms"] for r in runs]
            rows.append([
                f"end to end at {runs[0]['rate']:g} events/s, {mode}: p99 ms (p50 {fmt(med(p50))}), "
                "emit sent → revocation in force at the receiver", rng(p99), cmd(data),
                f"target {target:g} ms", ratio(med(p99), target), "≤ 100 %",
            ])  # fmt: skip
    for name, title in (("emit_poll", "emit → long poll"), ("emit_push", "emit → push")):
        data = load(results, name)
        for r in data.get("rows", []):
            if r.get("failing"):
                continue
            median = fmt(med([s["p50_ms"] for s in r["samples"]]))
            rows.append([
                f"{title} at full load, {r['alg']}: p99 ms (p50 {median})",
                rng([s["p99_ms"] for s in r["samples"]]), cmd(data), "-", "-", "-",
            ])  # fmt: skip
    return rows


def scale_rows(results: Path) -> list[list[str]]:
    rows = []
    for name in ("scale", "scale_proposed_index"):
        data = load(results, name)
        if not data:
            continue
        routing = data["routing"]
        note = " (with the proposed index)" if data.get("proposed_index") else ""
        small, large = routing[0], routing[-1]
        small_rate = med([s["events_per_s"] for s in small["samples"]])
        for r in routing:
            rate = med([s["events_per_s"] for s in r["samples"]])
            rows.append([
                f"routing{note}: {r['streams']:,} streams, {r['subjects']:,} subjects, 1 matching: events/s "
                f"(hub CPU {fmt(med([s['hub_cpu_us_per_event'] for s in r['samples']]))} µs/event)",
                rng([s["events_per_s"] for s in r["samples"]]), cmd(data),
                f"{small['streams']} streams: {fmt(small_rate)}/s", ratio(rate, small_rate), "≈ 100 % (flat)",
            ])  # fmt: skip
        per_stream = data["rss_per_idle_stream_bytes"]
        rows.append([
            f"RSS per idle stream{note} ({small['streams']} vs {large['streams']:,} streams): bytes",
            f"**{fmt(per_stream)}**", cmd(data), "target 10,240 B", ratio(per_stream, 10240), "≤ 100 %",
        ])  # fmt: skip
        polls = data.get("long_polls")
        if polls:
            s = polls["samples"]
            n = f"{polls['polls']:,}"
            per_poll = [(x["rss_polls_held_kib"] - x["rss_idle_kib"]) / polls["polls"] for x in s]
            fanout = s[0]["fanout_sets"] // s[0].get("fanout_events", 1)
            rows += [
                [f"{n} long polls held: RSS KiB per poll", rng(per_poll), cmd(data), "-", "-", "-"],
                [f"{n} long polls held, one woken at 50 events/s: wake-up p99 ms "
                 f"(p50 {fmt(med([x['wake_p50_ms'] for x in s]))})", rng([x["wake_p99_ms"] for x in s]),
                 cmd(data), "-", "-", "-"],
                [f"{n} long polls, one event for all ({fanout:,} SETs per "
                 f"event): p99 ms to each poller (p50 {fmt(med([x['fanout_p50_ms'] for x in s]))})",
                 rng([x["fanout_p99_ms"] for x in s]), cmd(data), "-", "-", "-"],
            ]  # fmt: skip
    return rows


def machine_line(results: Path) -> str:
    """When and where: the machine, and how busy it was when each benchmark started."""
    metas = {}
    for path in sorted(results.glob("*.json")):
        if path.stem not in TABLED:
            continue
        data = json.loads(path.read_text())
        if "meta" in data:
            metas[path.stem] = (data["meta"], data.get("started", data["meta"]))
    if not metas:
        return ""
    meta = next(iter(metas.values()))[0]
    dates = sorted(m["date"] for m, _ in metas.values())
    busy = ", ".join(f"{name} {100 * s['busy_before_start']:.0f} %" for name, (_, s) in metas.items()
                     if "busy_before_start" in s)  # fmt: skip
    loads = ", ".join(f"{name} {started['loadavg'][0]:.1f}" for name, (_, started) in metas.items()
                      if "loadavg" in started)  # fmt: skip
    return (
        f"Taken {dates[0]} to {dates[-1]} on {meta['nproc']} CPUs ({meta['cpu_model']}), Python "
        f"{meta['python']}, CPU pinning {'on' if meta['pinning'] else 'off'}. Both CPUs' use by other "
        f"processes in the second before each benchmark started: {busy or 'not recorded'}. 1-minute load "
        f"average then (it includes the previous benchmark's tail): {loads}.\n"
    )


def markdown(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args()
    results = Path(args.results)
    floors = load(results, "floors")
    if not floors:
        raise SystemExit(f"no floors.json in {results}: run python -m tests.bench.floors first")
    print(machine_line(results))
    runs = len(floors["rows"][0]["per_s"])
    print(f"Floors ({cmd(floors)}; median of {runs} runs, min to max):\n")
    print(
        markdown(
            ("floor", "per CPU-second of the measured process (SQLite: per second)", "per wall-clock second"),
            [[r["what"], rng(r["per_s"]), fmt(med(r.get("per_wall_s", r["per_s"])))] for r in floors["rows"]],
        )
    )
    heads = ("figure", "median (min to max)", "command", "floor", "ratio", "target")
    print("\nThe hub against its floors:\n")
    print(markdown(heads, throughput_rows(results, floors)))
    print("\nA second core (same runs, one signing process pinned to the load's CPU):\n")
    print(markdown(("figure", "1 core → 2 cores (median)", "command", "speed-up"), second_core_rows(results)))
    print("\nLatency:\n")
    print(markdown(heads, latency_rows(results)))
    print("\nScale:\n")
    print(markdown(heads, scale_rows(results)))


if __name__ == "__main__":
    main()
