"""Remediation receipts: tell an ssf-hub what this receiver did with the SETs it got.

An ssf-hub extension (``POST /ssf/receipts``), off unless you create a :class:`ReceiptSender`:
security teams running revocation drills then see, per stream, that the agent dropped its
token and the tool refused the stale call, not only that the SET was delivered.

    sender = ReceiptSender.for_stream(client, stream.stream_id)
    sender.attach(access)            # every remediation the library audits becomes a receipt
    async with sender.running():     # a background task sends them in batches
        ...

The hook is the library's audit log (:class:`~receivers.audit.AuditLog` sinks): ``token_dropped``
and ``request_refused`` records go out as they are, a ``policy_changed`` that denies as
``policy_denied``, ``event_ignored`` as ``ignored``; anything can also be reported by hand
(:meth:`ReceiptSender.report`). Reporting never blocks acting on a SET: it appends to a
bounded buffer (full: the receipt is dropped and counted); the sender batches what piled up,
and a batch the hub refuses or does not answer is logged and dropped, never retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from receivers.audit import EVENT_IGNORED, POLICY_CHANGED, REQUEST_REFUSED, TOKEN_DROPPED, AuditRecord
from receivers.oauth import BearerAuth, TokenSource

if TYPE_CHECKING:
    from receivers.client import StreamClient
    from receivers.continuous import ContinuousAccess

__all__ = ["RECEIPT_ACTIONS", "Receipt", "ReceiptSender", "receipt_for"]

RECEIPT_ACTIONS = ("token_dropped", "request_refused", "policy_denied", "ignored")
log = logging.getLogger("receivers.receipts")


@dataclass(frozen=True)
class Receipt:
    jti: str
    action: str
    count: int
    at: float

    def as_dict(self) -> dict[str, Any]:
        return {"jti": self.jti, "action": self.action, "count": self.count, "at": self.at}


def receipt_for(record: AuditRecord) -> tuple[str, str] | None:
    """The (jti, receipt action) an audit record stands for; None when it is not a remediation
    of a SET (no jti, a revocation noted, a policy change that allows)."""
    if record.jti is None:
        return None
    if record.action in (TOKEN_DROPPED, REQUEST_REFUSED):
        return record.jti, record.action
    if record.action == EVENT_IGNORED:
        return record.jti, "ignored"
    if record.action == POLICY_CHANGED and record.detail.get("allowed") is False:
        return record.jti, "policy_denied"
    return None


class ReceiptSender:
    """Sends remediation receipts for one stream to an ssf-hub, batched, in the background."""

    def __init__(
        self,
        url: str,
        stream_id: str,
        *,
        http: httpx.AsyncClient,
        auth: httpx.Auth | TokenSource | None = None,
        max_buffer: int = 1000,
        max_batch: int = 100,
        interval: float = 0.2,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.stream_id = stream_id
        self.http = http
        self.auth: httpx.Auth | None = (
            auth if isinstance(auth, httpx.Auth) or auth is None else BearerAuth(auth)
        )
        self.max_buffer = max_buffer
        self.max_batch = max_batch
        self.interval = interval
        self.clock = clock
        self.dropped = 0  # receipts lost to a full buffer or a failed batch
        self.sent = 0  # receipts the hub answered for (kept or skipped)
        self.batches = 0
        self._buffer: list[Receipt] = []
        self._wake = asyncio.Event()
        self._sending = 0  # batches in flight

    @classmethod
    def for_stream(cls, client: StreamClient, stream_id: str, **options: Any) -> ReceiptSender:
        """A sender to the hub ``client`` talks to: ``/ssf/receipts`` beside its configuration
        endpoint (the ssf-hub layout), with the client's HTTP client and credentials."""
        config = client.metadata.configuration_endpoint
        if not config:
            raise ValueError("the transmitter publishes no configuration_endpoint")
        url = config.rsplit("/", 1)[0] + "/receipts"
        return cls(url, stream_id, http=client.http, auth=client.auth, **options)

    # -- reporting (never blocks) -----------------------------------------------------------------
    def report(self, jti: str, action: str, count: int = 1, at: float | None = None) -> bool:
        """Queue a receipt; False (and counted in :attr:`dropped`) when the buffer is full."""
        if action not in RECEIPT_ACTIONS:
            raise ValueError(f"action must be one of {', '.join(RECEIPT_ACTIONS)}")
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return False
        self._buffer.append(Receipt(jti, action, count, self.clock() if at is None else at))
        self._wake.set()
        return True

    def sink(self, record: AuditRecord) -> None:
        """An :class:`~receivers.audit.AuditLog` sink: a remediation becomes a receipt."""
        found = receipt_for(record)
        if found is not None:
            self.report(found[0], found[1], at=record.at)

    def attach(self, access: ContinuousAccess) -> None:
        """Report every remediation ``access`` audits from now on."""
        access.audit.add_sink(self.sink)

    # -- sending ------------------------------------------------------------------------------------
    async def flush(self) -> int:
        """Send what is buffered now, one batch per ``max_batch``; returns how many went out."""
        total = 0
        while self._buffer:
            batch, self._buffer = self._buffer[: self.max_batch], self._buffer[self.max_batch :]
            total += await self._send(batch)
        return total

    async def _send(self, batch: list[Receipt]) -> int:
        # The same (jti, action) reported many times in a burst (say, every refused retry of
        # a stale call) goes out as one receipt with the sum of the counts.
        counts: Counter[tuple[str, str]] = Counter()
        first_at: dict[tuple[str, str], float] = {}
        for r in batch:
            counts[r.jti, r.action] += r.count
            first_at.setdefault((r.jti, r.action), r.at)
        body = {
            "stream_id": self.stream_id,
            "receipts": [
                Receipt(jti, action, count, first_at[jti, action]).as_dict()
                for (jti, action), count in counts.items()
            ],
        }
        self._sending += 1
        try:
            response = await self.http.post(self.url, json=body, auth=self.auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            self.dropped += len(batch)
            log.warning("receipts not sent to %s (%d dropped): %s", self.url, len(batch), exc)
            return 0
        finally:
            self._sending -= 1
        if response.status_code != 202:
            self.dropped += len(batch)
            log.warning(
                "receipts refused by %s: HTTP %d (%d dropped) %s",
                self.url,
                response.status_code,
                len(batch),
                response.text[:200],
            )
            return 0
        self.batches += 1
        self.sent += len(batch)
        return len(batch)

    async def drain(self) -> None:
        """Send what is buffered and wait for batches in flight: everything reported so far
        has then reached the hub (or been dropped). Bound it with ``asyncio.timeout``."""
        await self.flush()
        while self._sending or self._buffer:
            await asyncio.sleep(0.01)
            await self.flush()

    async def run(self) -> None:
        """Send batches until cancelled: wake on the first receipt, wait ``interval`` for more."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.interval)
            self._wake.clear()
            await self.flush()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ReceiptSender]:
        """Run :meth:`run` in the background; on exit, send what is left (best effort)."""
        task = asyncio.create_task(self.run(), name="receipt-sender")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await self.flush()
