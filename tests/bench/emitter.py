"""Benchmark worker: emits session-revoked events through the hub's admin API.

    python -m tests.bench.emitter PLAN.json REPORT.json

Plan: ``base``, ``token`` (ssf.admin), ``subjects`` (event k is for ``subjects[k % len]``),
``events``, ``concurrency`` (requests in flight), ``rate`` (events/s, 0 = as fast as the hub
answers), optional ``batch`` (events per request, default 1; more uses the batch form
``{"events": [...]}``), optional ``start_at`` (a ``time.monotonic()`` instant to begin at, so several
workers start together). Report: one ``[jti, stream_id, sent, acked]`` per queued SET
(``time.monotonic()``, which every process on the machine shares), the failures, and with a rate
``late_max``: how far the emitter fell behind its schedule (every lane busy, or no CPU).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.bench.harness import run_async


async def emit_all(plan: dict[str, Any]) -> dict[str, Any]:
    subjects = plan["subjects"]
    events, concurrency, rate = plan["events"], plan["concurrency"], plan.get("rate", 0)
    batch = plan.get("batch", 1)  # events per request: > 1 uses the batch form {"events": [...]}
    url = plan["base"] + "/ssf/admin/events"
    headers = {"Authorization": f"Bearer {plan['token']}"}
    records: list[list[Any]] = []
    failures: list[str] = []
    next_event = 0
    late_max = 0.0  # with a rate: the longest any event was sent after its scheduled instant
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        if "start_at" in plan:
            await asyncio.sleep(max(0.0, plan["start_at"] - time.monotonic()))
        started = time.monotonic()

        async def lane() -> None:
            nonlocal next_event, late_max
            while next_event < events:
                k = next_event
                ks = range(k, min(events, k + batch))
                next_event = ks.stop
                if rate:
                    await asyncio.sleep(max(0.0, started + k / rate - time.monotonic()))
                    late_max = max(late_max, time.monotonic() - (started + k / rate))
                bodies = [{"event": "session-revoked", "subject": subjects[n % len(subjects)]} for n in ks]
                sent = time.monotonic()
                async with http.post(url, json=bodies[0] if batch == 1 else {"events": bodies}) as r:
                    data = await r.json(content_type=None)
                    acked = time.monotonic()
                    if r.status != 200:
                        failures.append(f"{r.status}: {data}")
                        continue
                for result in [data] if batch == 1 else data["events"]:
                    records.extend([s["jti"], s["stream_id"], sent, acked] for s in result["sets"])

        await asyncio.gather(*(lane() for _ in range(concurrency)))
        finished = time.monotonic()
    return {
        "records": records,
        "failures": failures,
        "started": started,
        "finished": finished,
        "late_max": late_max,
    }


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    report = run_async(emit_all(plan))
    Path(sys.argv[2]).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
