"""Benchmark worker: long-polls streams (RFC 8936) with ``ack`` and notes when each SET arrives.

    python -m tests.bench.poller PLAN.json REPORT.json

Plan: ``token`` (ssf.manage), ``poll_urls`` (one long-polling task per stream), ``expected``
(distinct SETs this worker waits for), ``limit`` (seconds), ``max_events``, ``ready`` (a file
touched once every stream's long poll is in flight). Report: ``{jti: time.monotonic()}`` of
first arrival, duplicates seen, and whether the wait timed out. SETs are not verified: the
receiver's costs are not the hub's (``receivers_latency`` covers a verifying receiver).
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


async def poll_all(plan: dict[str, Any]) -> dict[str, Any]:
    arrived: dict[str, float] = {}
    duplicates = 0
    errors: list[str] = []
    enough = asyncio.Event()
    expected = plan["expected"]
    headers = {"Authorization": f"Bearer {plan['token']}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as http:
        # One immediate poll per stream first, so connections are open before the clock starts.
        for url in plan["poll_urls"]:
            async with http.post(url, json={"returnImmediately": True, "maxEvents": 0}) as r:
                r.raise_for_status()

        async def follow(url: str) -> None:
            nonlocal duplicates
            ack: list[str] = []
            while True:
                body = {"returnImmediately": False, "maxEvents": plan["max_events"], "ack": ack}
                async with http.post(url, json=body) as r:
                    if r.status != 200:
                        raise RuntimeError(f"{url}: HTTP {r.status} {await r.text()}"[:300])
                    data = await r.json()
                    now = time.monotonic()
                for jti in data["sets"]:
                    if jti in arrived:
                        duplicates += 1
                    else:
                        arrived[jti] = now
                ack = list(data["sets"])
                if len(arrived) >= expected:
                    enough.set()

        async def follow_or_fail(url: str) -> None:
            try:
                await follow(url)
            except Exception as exc:  # stop the whole run now, not at the time limit
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                enough.set()

        tasks = [asyncio.create_task(follow_or_fail(url)) for url in plan["poll_urls"]]
        await asyncio.sleep(0.3 + len(tasks) / 1000)  # every long poll sent and held by the hub
        Path(plan["ready"]).touch()
        timed_out = False
        try:
            async with asyncio.timeout(plan["limit"]):
                await enough.wait()
        except TimeoutError:
            timed_out = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"arrived": arrived, "duplicates": duplicates, "errors": errors, "timed_out": timed_out}


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    report = run_async(poll_all(plan))
    Path(sys.argv[2]).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
