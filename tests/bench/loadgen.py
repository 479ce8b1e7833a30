"""Benchmark worker: POSTs one body to one URL for a fixed time with N requests in flight.

    python -m tests.bench.loadgen PLAN.json REPORT.json

Plan: ``url``, ``body``, ``headers``, ``client`` (``aiohttp``, ``httpx``, or ``httpx-aiohttp``:
the httpx API over aiohttp's transport, as the hub pushes), ``concurrency``, ``seconds``.
Two uses: the HTTP client floor (this process is the one measured, on its own core) and, when
``wrk`` is missing, the load on the bare server floor. Report: requests, non-2xx answers,
seconds, this process's CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from tests.bench.harness import run_async

Post = Callable[[], Awaitable[int]]


async def drive(post: Post, concurrency: int, seconds: float) -> tuple[int, int, float]:
    for _ in range(concurrency):  # warm the connection pool
        await post()
    done = bad = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def lane() -> None:
        nonlocal done, bad
        while time.perf_counter() < deadline:
            status = await post()
            done += 1
            bad += not 200 <= status < 300

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return done, bad, time.perf_counter() - started


async def load(plan: dict[str, Any]) -> dict[str, Any]:
    url, body, headers = plan["url"], plan["body"].encode(), plan.get("headers", {})
    client, concurrency, seconds = plan["client"], plan["concurrency"], plan["seconds"]
    cpu = time.process_time()
    if client == "aiohttp":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

            async def post() -> int:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                    return r.status

            done, bad, elapsed = await drive(post, concurrency, seconds)
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        if client == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport

            http = httpx.AsyncClient(transport=AiohttpTransport(limits=limits, trust_env=False))
        else:
            http = httpx.AsyncClient(limits=limits, trust_env=False)
        async with http:

            async def post() -> int:
                return (await http.post(url, content=body, headers=headers)).status_code

            done, bad, elapsed = await drive(post, concurrency, seconds)
    return {"requests": done, "non_2xx": bad, "seconds": elapsed, "cpu_s": time.process_time() - cpu}


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(run_async(load(plan))))


if __name__ == "__main__":
    main()
