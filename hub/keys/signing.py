"""Signing SETs on a second core.

A hub process is one event loop: every microsecond spent signing is one not spent on HTTP,
routing or the store. :class:`SetSigner` signs with the ring's active key either in the loop
or in child processes (:mod:`hub.keys.signing_child`), one per extra core it is given
(``signing_processes``). Requests made in the same loop turn travel as one frame, so a burst
of emits costs one round trip, and the loop only pickles claims and unpickles strings.

Why not ``concurrent.futures.ProcessPoolExecutor``: measured on the development machine, a
round trip through it costs the event loop 380-530 µs of CPU (its queue feeder and manager
threads contend for the GIL), more than an RS256 signature; a pipe to a child read by the
event loop itself costs 60-90 µs.

A child that dies fails its batches over to signing in the loop (nothing is lost or signed
twice: a batch either came back or is signed again here) and is restarted, at most once per
``restart_delay`` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub import metrics
from hub.keys.ring import SET_TYP, RingKey, SigningKeyRing
from hub.keys.signing_child import HEADER, encode_frame

log = logging.getLogger("hub.signing")

Claims = dict[str, Any]


# The smallest request worth a round trip to a child, per algorithm. Measured with
# tests.bench.emit_poll/emit_push on a 2-core machine (tests/bench/README.md): one RS256 SET
# per event +31..+39 % with a child, ten ES256 SETs per event +24 %, one ES256 SET +0 %
# (an ES256 signature costs about what the round trip costs the event loop).
MIN_BATCH: Mapping[str, int] = {"RS256": 1, "ES256": 4, "EdDSA": 4}


class SigningUnavailable(Exception):
    """The child could not sign this batch (it died, or refused it); sign in the loop instead."""


def auto_processes() -> int:
    """One signing process when this process may run on a second core, else none."""
    # sched_getaffinity (Linux) sees taskset/cgroup pinning; elsewhere count the machine's CPUs.
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 if usable >= 2 else 0


@dataclass
class _Request:
    key: RingKey
    typ: str
    claims: Sequence[Claims]
    done: asyncio.Future[list[str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SigningProcess:
    """One ``hub.keys.signing_child`` process and the batches in flight to it."""

    def __init__(self, argv: Sequence[str] | None = None) -> None:
        self._argv = list(argv or (sys.executable, "-m", "hub.keys.signing_child"))
        self._proc: asyncio.subprocess.Process | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, list[_Request]] = {}
        self._queued: list[_Request] = []
        self._flush_scheduled = False
        self._batches = itertools.count()
        self._sent_kids: set[str] = set()
        self.alive = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        self.alive = True
        self._reader_task = asyncio.create_task(self._read_answers(), name="signing-child-reader")

    async def sign(self, key: RingKey, typ: str, claims: Sequence[Claims]) -> list[str]:
        if not self.alive:
            raise SigningUnavailable("the signing process is not running")
        request = _Request(key, typ, claims)
        self._queued.append(request)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await request.done

    def _flush(self) -> None:
        """Send what this loop turn asked for: one frame per run of requests with one key."""
        self._flush_scheduled = False
        queued, self._queued = self._queued, []
        if not self.alive or self._proc is None or self._proc.stdin is None:
            self._fail(queued, "the signing process is not running")
            return
        frames: list[bytes] = []
        group: list[_Request] = []
        for request in queued:
            if group and (request.key.kid, request.typ) != (group[0].key.kid, group[0].typ):
                frames.append(self._frame_for(group))
                group = []
            group.append(request)
        if group:
            frames.append(self._frame_for(group))
        self._proc.stdin.write(b"".join(frames))

    def _frame_for(self, group: list[_Request]) -> bytes:
        key, typ = group[0].key, group[0].typ
        prefix = b""
        if key.kid not in self._sent_kids:
            self._sent_kids.add(key.kid)
            prefix = encode_frame(("key", key.kid, key.alg, key.key.as_dict(private=True)))
        batch = next(self._batches)
        self._in_flight[batch] = group
        claims = [c for request in group for c in request.claims]
        return prefix + encode_frame(("sign", batch, key.kid, typ, claims))

    async def _read_answers(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        try:
            while True:
                (size,) = HEADER.unpack(await stdout.readexactly(HEADER.size))
                kind, batch, payload = _loads(await stdout.readexactly(size))
                group = self._in_flight.pop(batch, [])
                if kind != "signed":
                    self._fail(group, str(payload))
                    continue
                offset = 0
                for request in group:
                    part = payload[offset : offset + len(request.claims)]
                    offset += len(request.claims)
                    if not request.done.done():
                        request.done.set_result(part)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            if self.alive:  # not a close() of ours
                log.warning("signing process %s stopped answering (%s); signing in the hub", self.pid, exc)
        finally:
            self.alive = False
            for group in self._in_flight.values():
                self._fail(group, "the signing process stopped")
            self._in_flight.clear()

    @staticmethod
    def _fail(group: list[_Request], reason: str) -> None:
        for request in group:
            if not request.done.done():
                request.done.set_exception(SigningUnavailable(reason))

    async def close(self) -> None:
        self.alive = False
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader_task is not None:
            await self._reader_task


def _loads(body: bytes) -> tuple[str, int, Any]:
    kind, batch, payload = pickle.loads(body)  # noqa: S301 - our own child, on a private pipe
    return str(kind), int(batch), payload


class SetSigner:
    """Signs SETs with the ring's active key, in ``processes`` children or in the loop."""

    def __init__(
        self,
        ring: SigningKeyRing,
        *,
        processes: int = 0,
        restart_delay: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        process_factory: Callable[[], SigningProcess] = SigningProcess,
        min_batch: Mapping[str, int] | None = None,
    ) -> None:
        self.ring = ring
        self._min_batch = dict(MIN_BATCH if min_batch is None else min_batch)
        self._wanted = processes
        self._restart_delay = restart_delay
        self._clock = clock
        self._factory = process_factory
        self._children: list[SigningProcess] = []
        self._next = itertools.count()
        self._last_restart = float("-inf")
        self._restarting: asyncio.Task[None] | None = None

    @property
    def processes(self) -> list[SigningProcess]:
        return list(self._children)

    async def start(self) -> None:
        for _ in range(self._wanted):
            child = self._factory()
            try:
                await child.start()
            except OSError as exc:  # the hub still works, on one core
                log.warning("could not start a signing process, signing in the hub: %s", exc)
                continue
            self._children.append(child)
        if self._children:
            pids = [c.pid for c in self._children]
            log.info("signing SETs in %d process(es): pid %s", len(pids), pids)

    async def close(self) -> None:
        if self._restarting is not None:
            await self._restarting
        for child in self._children:
            await child.close()
        self._children.clear()

    async def sign_many(self, claims: Sequence[Claims], *, typ: str = SET_TYP) -> list[str]:
        if not claims:
            return []
        if len(claims) < self._min_batch.get(self.ring.active.alg, 1):
            return [self.ring.sign(c, typ=typ) for c in claims]
        child = self._pick()
        if child is not None:
            try:
                return await child.sign(self.ring.active, typ, claims)
            except SigningUnavailable as exc:
                log.warning("signing in the hub process instead: %s", exc)
                self._restart_dead()
        return [self.ring.sign(c, typ=typ) for c in claims]

    def _pick(self) -> SigningProcess | None:
        live = [c for c in self._children if c.alive]
        if len(live) < len(self._children):
            self._restart_dead()
        if not live:
            return None
        return live[next(self._next) % len(live)]

    def _restart_dead(self) -> None:
        if self._restarting is not None or self._clock() - self._last_restart < self._restart_delay:
            return
        self._last_restart = self._clock()
        self._restarting = asyncio.create_task(self._restart(), name="signing-restart")

    async def _restart(self) -> None:
        try:
            for i, child in enumerate(self._children):
                if child.alive:
                    continue
                await child.close()
                fresh = self._factory()
                try:
                    await fresh.start()
                except OSError as exc:
                    log.warning("could not restart a signing process: %s", exc)
                    continue
                self._children[i] = fresh
                metrics.SIGNING_RESTARTS.inc()
                log.warning("signing process restarted: pid %s", fresh.pid)
        finally:
            self._restarting = None
