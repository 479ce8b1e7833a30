"""``ssf-hub serve`` as a real child process, for tests that SIGKILL it and start it again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import httpx

from tests.bench.harness import children

SSF_HUB = str(Path(sys.executable).parent / "ssf-hub")
LISTEN = "0A"  # the TCP state column of /proc/net/tcp


class TcpSocket(NamedTuple):
    local_port: int
    remote_port: int
    listening: bool
    inode: str


def tcp_sockets() -> Iterator[TcpSocket]:
    """The machine's TCP sockets (IPv4 and IPv6), from ``/proc/net/tcp*``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                parts = line.split()
                local, remote = (int(end.rsplit(":", 1)[1], 16) for end in parts[1:3])
                yield TcpSocket(local, remote, parts[3] == LISTEN, parts[9])


def socket_holder(inodes: set[str], pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds one of the sockets ``inodes`` open."""
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if fd.readlink().as_posix() in targets:
                        return pid
    return None


def listens_on(pid: int, port: int) -> bool:
    """Whether ``pid`` or one of its children listens on ``port``. A port picked free for a
    child can be taken by another test's server before the child binds it; a health check
    that answers is then someone else's, and the child is about to exit."""
    inodes = {s.inode for s in tcp_sockets() if s.listening and s.local_port == port}
    return socket_holder(inodes, [pid, *children(pid)]) is not None


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
                    answer = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    if answer.status_code == 200 and listens_on(proc.pid, port):  # this hub's answer
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
