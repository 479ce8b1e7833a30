"""A fast push receiver for benchmarks: answers every POST with 202 and counts.

    python -m tests.bench.receiver PORT

GET /count returns the number of SETs received and the distinct jtis seen is not
tracked (cheap on purpose: the receiver must not be the bottleneck).
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

COUNT = [0]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        COUNT[0] += 1
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = str(COUNT[0]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False, lifespan="off"
    )
