"""``ssf-hub serve`` as a real child process, for tests that SIGKILL it and start it again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx

SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")


@contextlib.asynccontextmanager
async def serve_process(
    data_dir: Path, port: int, log: Path, *flags: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Yields once ``/healthz`` answers 200. The caller may SIGKILL the process; otherwise it
    is stopped with SIGTERM (and killed if it has not stopped 10 s later)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    environ.update(env or {})
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [SSF_HUB, "serve", *flags, "--data-dir", str(data_dir), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
        )
    try:
        deadline = time.monotonic() + 15
        async with httpx.AsyncClient() as client:
            while True:
                assert proc.poll() is None, log.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code == 200:
                        break
                assert time.monotonic() < deadline, "the hub did not become healthy"
                await asyncio.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 10)
        except TimeoutError:
            proc.kill()
            await asyncio.to_thread(proc.wait)
