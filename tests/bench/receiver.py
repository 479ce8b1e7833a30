"""A fast push receiver for benchmarks: answers every POST with 202, notes when each SET came.

    python -m tests.bench.receiver PORT [--fail-prefix /fail/] [--delay SECONDS]

POSTs to a path under ``--fail-prefix`` get ``503`` (a receiver that is down); ``--delay``
makes every answer wait that long (a receiver across a WAN). ``GET /max_open`` is the most
POSTs that were ever being answered at once. ``GET /count``
is the number of POSTs answered 202, ``GET /distinct`` the distinct SETs (``jti``) among them,
``GET /failed`` the POSTs answered 503, and ``GET /times`` a JSON object
``{jti: time.monotonic()}`` of each SET's first 202 arrival (the clock every process on the
machine shares). Raw ASGI, no SET verification: it must not be the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from typing import Any

import uvicorn

COUNT = [0]
FAILED = [0]
ARRIVED: dict[str, float] = {}
FAIL_PREFIX: list[str] = []
DELAY = [0.0]
OPEN = [0, 0]  # POSTs being answered now, the most ever at once


def jti_of(body: bytes) -> str | None:
    try:
        payload = body.split(b".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        return str(claims["jti"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if FAIL_PREFIX and scope["path"].startswith(FAIL_PREFIX[0]):
            FAILED[0] += 1
            status = 503
        else:
            now = time.monotonic()
            COUNT[0] += 1
            jti = jti_of(body)
            if jti is not None:
                ARRIVED.setdefault(jti, now)
            status = 202
        if DELAY[0]:
            OPEN[0] += 1
            OPEN[1] = max(OPEN)
            await asyncio.sleep(DELAY[0])
            OPEN[0] -= 1
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/times":
        out, kind = json.dumps(ARRIVED).encode(), b"application/json"
    else:
        counts = {"/failed": FAILED[0], "/distinct": len(ARRIVED), "/max_open": OPEN[1]}
        out, kind = str(counts.get(scope["path"], COUNT[0])).encode(), b"text/plain"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": out})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("port", type=int)
    parser.add_argument("--fail-prefix", default=None, help="POSTs under this path answer 503")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each POST is answered")
    args = parser.parse_args()
    DELAY[0] = args.delay
    if args.fail_prefix:
        FAIL_PREFIX.append(args.fail_prefix)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, lifespan="off")


if __name__ == "__main__":
    main()
