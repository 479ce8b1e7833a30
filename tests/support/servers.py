"""Run a real ASGI app with uvicorn on 127.0.0.1 inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT = 5.0


@asynccontextmanager
async def serve_app(
    app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "off", tls: tuple[Path, Path] | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port; yields ``http://127.0.0.1:PORT`` (``https`` with
    ``tls``: the certificate and key PEM files to serve with).

    The socket is bound here (port 0) and handed to uvicorn, so there is no window in
    which another process could take the port between picking and binding it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan=lifespan,
        ws="none",
        log_config=None,  # leave the test process's logging setup alone
        log_level="warning",
        timeout_graceful_shutdown=2,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + STARTUP_TIMEOUT
        while not server.started:
            if task.done():
                task.result()  # re-raise the startup error
                raise RuntimeError("uvicorn exited before it started")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("uvicorn did not start in time")
            await asyncio.sleep(0.01)
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            sock.close()
