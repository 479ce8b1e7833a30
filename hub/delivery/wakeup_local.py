"""Carries wake-ups and stream-record changes between the processes of one ``ssf-hub serve
--processes N`` on one SQLite file, over Unix datagram sockets.

Process ``i`` of ``N`` binds the abstract socket ``\\0ssf-hub/<data dir hash>/<i>`` (Linux) and
sends to the ``N - 1`` others what its :class:`~hub.delivery.wakeup.QueueSignal` was told
(streams with new work: a long poll held there, or its push worker, must wake) and which
stream records its store wrote (their cached copies must go). No file, no port and no
discovery: the indexes are fixed, and a process restarted by the supervisor binds the same
name again.

What is sent in one loop turn goes out together, changes before wake-ups, so a woken
process reads the new record. A peer whose queue is full (it is busy) keeps its share
pending, merged, and gets it a few milliseconds later; a peer that is not there (being
restarted) is skipped: it starts with an empty cache and reads the queues afresh. Either way
correctness never rests on a datagram: the SETs are in the store, the push sweep looks for
pending work every few seconds, and a long poll re-reads its queue when it times out.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hub.delivery.wakeup import QueueSignal

log = logging.getLogger("hub.wakeup")

WAKE, CHANGE, EVERYTHING = b"w", b"c", b"*"
MAX_DATAGRAM = 60_000  # under the default socket buffer, whatever the sysctls
RETRY_SECONDS = 0.005  # a busy peer's share is sent again this soon
MAX_PENDING_IDS = 50_000  # past this a busy peer gets one "re-read everything" instead


def socket_name(data_dir: Path, index: int) -> bytes:
    """The abstract socket address of process ``index`` serving ``data_dir``."""
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return b"\0" + f"ssf-hub/{key}/{index}".encode()


@dataclass
class _Pending:
    wakes: set[str] = field(default_factory=set)
    changes: set[str] = field(default_factory=set)
    everything: bool = False

    def __bool__(self) -> bool:
        return bool(self.wakes or self.changes or self.everything)


def _datagrams(kind: bytes, ids: Iterable[str]) -> list[bytes]:
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 1
    for sid in ids:
        raw = sid.encode()
        if chunk and size + len(raw) + 1 > MAX_DATAGRAM:
            out.append(kind + b"\n".join(chunk))
            chunk, size = [], 1
        chunk.append(raw)
        size += len(raw) + 1
    if chunk:
        out.append(kind + b"\n".join(chunk))
    return out


class ProcessWakeupRelay:
    """Process ``index`` of ``processes`` serving ``data_dir``; see the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        index: int,
        processes: int,
        signal: QueueSignal,
        *,
        forget_stream: Callable[[str | None], None] | None = None,
    ) -> None:
        if not 0 <= index < processes:
            raise ValueError(f"process index {index} is not in 0..{processes - 1}")
        self.index = index
        self.signal = signal
        self.forget_stream = forget_stream
        self._name = socket_name(data_dir, index)
        self._peers = {i: socket_name(data_dir, i) for i in range(processes) if i != index}
        self._pending = {i: _Pending() for i in self._peers}
        self._inbox: socket.socket | None = None
        self._outbox: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_scheduled = False
        self.sent = self.deferred = 0  # datagrams sent, and sends put off (a busy peer)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            inbox.bind(self._name)
        except OSError:
            inbox.close()
            raise
        inbox.setblocking(False)
        outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        outbox.setblocking(False)
        self._inbox, self._outbox = inbox, outbox
        self._loop.add_reader(inbox.fileno(), self._receive)
        self.signal.relay_to(self.send_wakes)

    async def stop(self) -> None:
        if self._inbox is not None and self._loop is not None:
            self._loop.remove_reader(self._inbox.fileno())
        for sock in (self._inbox, self._outbox):
            if sock is not None:
                sock.close()
        self._inbox = self._outbox = None

    # -- sending -------------------------------------------------------------------------------
    def send_wakes(self, stream_ids: Sequence[str]) -> None:
        """Wake the other processes' long polls and push workers for ``stream_ids``."""
        for pending in self._pending.values():
            pending.wakes.update(stream_ids)
        self._schedule(0)

    def send_change(self, stream_id: str) -> None:
        """Tell the other processes their copy of this stream's record is stale."""
        for pending in self._pending.values():
            pending.changes.add(stream_id)
        self._schedule(0)

    def _schedule(self, delay: float) -> None:
        if self._flush_scheduled or self._loop is None or self._outbox is None:
            return
        self._flush_scheduled = True
        if delay:
            self._loop.call_later(delay, self._flush)
        else:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._outbox is None:
            return
        busy = False
        for index, pending in self._pending.items():
            if pending:
                busy |= not self._send_to(index, pending)
        if busy:
            self._schedule(RETRY_SECONDS)

    def _send_to(self, index: int, pending: _Pending) -> bool:
        """Send ``pending`` to one peer; False if it is busy (the rest stays pending)."""
        assert self._outbox is not None
        if len(pending.wakes) + len(pending.changes) > MAX_PENDING_IDS:
            pending.wakes.clear()
            pending.changes.clear()
            pending.everything = True
        # Changes first: a process woken for a stream must not read the record it had cached.
        batches = [(EVERYTHING, [b"*"])] if pending.everything else []
        batches += [(CHANGE, _datagrams(CHANGE, sorted(pending.changes)))]
        batches += [(WAKE, _datagrams(WAKE, sorted(pending.wakes)))]
        for kind, datagrams in batches:
            for datagram in datagrams:
                try:
                    self._outbox.sendto(datagram, self._peers[index])
                except BlockingIOError:
                    self.deferred += 1
                    return False  # what was not sent stays pending (sets: resending is harmless)
                except OSError:
                    # Not there (ECONNREFUSED: being restarted): it starts afresh without this.
                    pending.wakes.clear()
                    pending.changes.clear()
                    pending.everything = False
                    return True
                self.sent += 1
            if kind == EVERYTHING:
                pending.everything = False
            elif kind == CHANGE:
                pending.changes.clear()
            else:
                pending.wakes.clear()
        return True

    # -- receiving -----------------------------------------------------------------------------
    def _receive(self) -> None:
        assert self._inbox is not None
        while True:
            try:
                datagram = self._inbox.recv(MAX_DATAGRAM + 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("process wake-up socket failed: %s", exc)
                return
            kind, body = datagram[:1], datagram[1:]
            if kind == EVERYTHING:
                if self.forget_stream is not None:
                    self.forget_stream(None)
                self.signal.notify_local(self.signal.waiting_stream_ids())
                continue
            ids = [raw.decode() for raw in body.split(b"\n") if raw]
            if kind == CHANGE and self.forget_stream is not None:
                for sid in ids:
                    self.forget_stream(sid)
            elif kind == WAKE:
                self.signal.notify_local(ids)
