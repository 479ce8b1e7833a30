"""``ssf-hub serve --processes N``: N hub processes behind one port, so one machine's cores
all do hub work (one Python process uses one core).

This process, the supervisor, does no hub work. It prepares the store and the keys once (so
the hub processes never race to create them), holds the port, and starts the hub processes
(spawned, like uvicorn's own workers). Each listens on the port with SO_REUSEPORT, and the
kernel hands each new connection to one of them. Each hub process is a whole hub on the
same store; on SQLite they carry wake-ups and record changes to each other over Unix sockets
(:mod:`hub.delivery.wakeup_local`), on Redis as replicas do. Push streams, upstream links and
timed jobs are shared out through the store's leases, as between replicas.

A hub process that dies (``kill -9`` included) is started again in the same seat at once; its
leases are freed by its successor, so its push streams move on within a second. Nothing it
had accepted is lost: every write was committed before its request was answered. A seat that
keeps dying within seconds of starting stops the whole serve, with the reason in the log.
SIGTERM or Ctrl-C stops every hub process gracefully (each drains as ``serve`` does).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from hub import logs
from hub.config import Settings
from hub.errors import ConfigError

log = logging.getLogger("hub.processes")

QUICK_DEATH_SECONDS = 5.0  # a process that dies sooner than this after starting did not start
QUICK_DEATHS_ALLOWED = 5  # in a row, per seat, before the serve gives up
STOP_GRACE_SECONDS = 30.0
METRICS_DIR = "metrics-processes"


def serve_processes(settings: Settings) -> int:
    """Run ``settings.processes`` hub processes on one socket until SIGTERM/SIGINT."""
    if not sys.platform.startswith("linux"):
        raise ConfigError("--processes above 1 needs Linux (the processes wake each other over Unix sockets)")
    asyncio.run(_prepare(settings))
    _metrics_dir(Path(settings.data_dir))
    _refuse_a_busy_port(settings.host, settings.port)
    sock = _bind(settings.host, settings.port)
    log.info(
        "ssf-hub serve: %d hub processes on %s:%d (store %s)",
        settings.processes,
        settings.host,
        settings.port,
        settings.store,
    )
    return Supervisor(settings, sock).run()


async def _prepare(settings: Settings) -> None:
    """Open the store once as its only server (migrations; leases of an earlier run freed) and
    make the keys, before any hub process starts."""
    from hub.keys.storage import key_storage_for
    from hub.store import open_store

    store = open_store(
        settings.store,
        data_dir=Path(settings.data_dir),
        redis_url=settings.redis_url,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    await store.open()
    try:
        keys = key_storage_for(store, Path(settings.data_dir))
        await keys.load_ring(settings.signing_alg, time.time())
        await keys.token_key()
        await keys.secret_box()
    finally:
        await store.close()


def _metrics_dir(data_dir: Path) -> None:
    """prometheus_client's multiprocess directory, empty, named for the hub processes (they
    are spawned, so they import prometheus_client with it set)."""
    directory = data_dir / METRICS_DIR
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _bind(host: str, port: int) -> socket.socket:
    """A socket on ``host:port`` that the other hub processes may bind too (SO_REUSEPORT).

    Each hub process listens on a socket of its own and the kernel spreads new connections
    evenly over them; on one shared socket, one process took most of a burst of connections
    (measured: 79 % and 27 % CPU). The supervisor's socket is bound, not listening: it holds
    the port, and only sockets of the same user can join it."""
    return _bound(host, port, reuse_port=True)


def _refuse_a_busy_port(host: str, port: int) -> None:
    """SO_REUSEPORT would also let the supervisor join the port of *another* hub of the same
    user, and the kernel would split the traffic between them: a plain bind first finds any
    server listening there."""
    _bound(host, port, reuse_port=False).close()


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def run_hub_process(settings: Settings, index: int) -> None:
    """One hub process (the spawned child's entry point)."""
    import uvicorn

    from hub.runtime.context import ProcessSeat
    from hub.web.app import create_app
    from hub.web.server import ReadDeadlines, server_config

    logs.configure(settings.log_level, settings.log_format, process=index)
    _stop_with_the_supervisor()
    from hub import metrics  # imported here, after the supervisor named the metrics directory

    metrics.HUB_PROCESS_STARTS.inc()
    app = create_app(settings, seat=ProcessSeat(index, settings.processes))
    config = server_config(app, settings, ReadDeadlines.from_settings(settings), log_config=None)
    sock = _bind(settings.host, settings.port)
    sock.listen(2048)
    uvicorn.Server(config).run(sockets=[sock])


def _stop_with_the_supervisor() -> None:
    """A supervisor killed with ``kill -9`` cannot stop its hub processes: each watches it and
    stops itself gracefully (SIGTERM) when it is gone, rather than serve on unsupervised."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        log.warning("the serve supervisor is gone; this hub process stops")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        sock: socket.socket,
        *,
        target: Callable[[Settings, int], None] = run_hub_process,
    ) -> None:
        self.settings = settings
        self.sock = sock
        self.target = target  # what each seat runs (tests give a stand-in)
        self.context = multiprocessing.get_context("spawn")
        self.seats: dict[int, BaseProcess] = {}
        self.started_at: dict[int, float] = {}
        self.quick_deaths: dict[int, int] = {}
        self.stopping = False
        self.stop_signal: int | None = None
        self.failed = False

    def run(self) -> int:
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.settings.processes):
                self._start(index)
            while not self.stopping:
                self._watch()
                time.sleep(0.1)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()
        return 1 if self.failed else 0

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        self.stop_signal = signum

    def _start(self, index: int) -> None:
        process = self.context.Process(
            target=self.target,
            args=(self.settings, index),
            name=f"ssf-hub-{index}",
            daemon=False,
        )
        process.start()
        self.seats[index] = process
        self.started_at[index] = time.monotonic()
        log.info("hub process %d started (pid %s)", index, process.pid)

    def _watch(self) -> None:
        for index, process in list(self.seats.items()):
            if process.is_alive() or self.stopping:
                continue
            code = process.exitcode
            _forget_metrics(process.pid)
            quick = time.monotonic() - self.started_at[index] < QUICK_DEATH_SECONDS
            self.quick_deaths[index] = self.quick_deaths.get(index, 0) + 1 if quick else 0
            if self.quick_deaths[index] >= QUICK_DEATHS_ALLOWED:
                logs.event(
                    log,
                    logging.ERROR,
                    "hub_process_failing",
                    process=index,
                    exit_code=code,
                    quick_exits=self.quick_deaths[index],
                    action="serve stops; the lines above say why",
                )
                self.failed = self.stopping = True
                return
            logs.event(
                log, logging.WARNING, "hub_process_exited", process=index, pid=process.pid, exit_code=code
            )
            if quick:
                time.sleep(min(2.0, 0.2 * self.quick_deaths[index]))
            self._start(index)

    def _stop_all(self) -> None:
        alive = [p for p in self.seats.values() if p.is_alive()]
        if self.stop_signal == signal.SIGINT:
            # Ctrl-C reached the hub processes too (one process group): a second signal would
            # cut their graceful stop short, so give them a moment to stop on the first.
            for process in alive:
                process.join(timeout=1.0)
            alive = [p for p in alive if p.is_alive()]
        for process in alive:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in alive:
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning(
                    "hub process %s did not stop in %.0f s; killing it", process.name, STOP_GRACE_SECONDS
                )
                process.kill()
                process.join()
            _forget_metrics(process.pid)


def _forget_metrics(pid: int | None) -> None:
    """A dead process's live gauges leave the scrape (multiprocess mode)."""
    if pid is None or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
