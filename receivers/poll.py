"""RFC 8936 poll consumer (R-POLL-1..6).

Each request long-polls (``returnImmediately: false``) for up to ``max_events`` SETs and
carries the outcome of the previous batch: ``ack`` for every SET processed (repeats included)
and ``setErrs`` with the RFC 8935 code for every SET refused by validation — bad signature,
wrong issuer or audience, wrong verification ``state`` (R-POLL-5, R-VERIFY-6). Acknowledged
means "received": what a handler then does is not reported back to the transmitter.

A SET whose signing key cannot be looked up yet (:class:`~receivers.errors.KeysUnavailable`)
is left unacknowledged and the next poll waits for the key cache's ``retry_after``.

A SET whose handler failed (:class:`~receivers.dispatch.HandlerFailed`), or that could not be
processed at all (the state store is down, say), is not acknowledged either: the transmitter
delivers it again, after a back-off pause here.

Failures (network errors, 5xx, 429...) back off exponentially with jitter up to
``backoff_max``; a ``401`` first gets one token refresh through
:class:`~receivers.oauth.BearerAuth`. A ``404`` (the stream is gone) ends :meth:`PollConsumer.run`
with a :class:`~receivers.errors.TransmitterError`, kept in :attr:`PollConsumer.error` and raised
again when :meth:`PollConsumer.running` exits — it is never swallowed.

Feed health: :attr:`PollConsumer.last_success_at` is when a poll last came back and its whole
batch was processed; :attr:`PollConsumer.healthy` is False after a failure (until the next
success) and for good once the stream is gone; :attr:`PollConsumer.last_error` keeps the most
recent error. :class:`~receivers.middleware.ContinuousAccessMiddleware` can fail closed on a
stale feed (``feed=consumer, max_feed_age=...``).

:meth:`PollConsumer.stop` ends cleanly: a long poll in flight is abandoned (its SETs stay queued
at the transmitter, which redelivers them), a batch being processed is finished, and the
outstanding ``ack``/``setErrs`` are sent in one acknowledge-only request (``maxEvents: 0``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from receivers.dispatch import HandlerFailed
from receivers.errors import KeysUnavailable, SetError, TokenError, TransmitterError

__all__ = ["PollBatch", "PollConsumer", "SetProcessor"]

log = logging.getLogger("receivers.poll")


@dataclass(frozen=True)
class PollBatch:
    received: int
    acknowledged: int
    rejected: dict[str, dict[str, str]]
    more_available: bool
    deferred: int = 0  # left unacknowledged: keys not available yet (redelivered later)
    retry_after: float = 0.0
    failed: int = 0  # left unacknowledged: a handler failed or processing broke (redelivered later)


class SetProcessor(Protocol):
    """What the consumer hands each polled SET to: a :class:`~receivers.receiver.Receiver`, or
    anything else that refuses a SET by raising :class:`~receivers.errors.SetError` (reported in
    ``setErrs``) or defers it with :class:`~receivers.errors.KeysUnavailable` (not acknowledged)."""

    async def process(self, token: str) -> object: ...


class PollConsumer:
    """Long-polls one stream's poll endpoint and feeds a :class:`SetProcessor`
    (usually a :class:`~receivers.receiver.Receiver`)."""

    def __init__(
        self,
        endpoint_url: str,
        receiver: SetProcessor,
        *,
        http: httpx.AsyncClient,
        auth: httpx.Auth | None = None,
        max_events: int = 100,
        request_timeout: float = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.receiver = receiver
        self.http = http
        self.auth = auth
        self.max_events = max_events
        self.request_timeout = request_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.sleep = sleep
        self.clock = clock
        self.failures = 0  # consecutive failed requests or batches
        self.batches = 0
        self.last_success_at: float | None = None  # a poll came back and its batch was processed
        self.last_error: BaseException | None = None
        self.error: TransmitterError | None = None  # fatal: the stream is gone
        self._ack: list[str] = []
        self._set_errs: dict[str, dict[str, str]] = {}
        self._stopping = asyncio.Event()

    @property
    def healthy(self) -> bool:
        """The last poll succeeded and its batch was processed; the stream still exists."""
        return self.error is None and self.failures == 0 and self.last_success_at is not None

    @property
    def outstanding(self) -> tuple[list[str], dict[str, dict[str, str]]]:
        """The ``ack`` and ``setErrs`` the next request will carry."""
        return list(self._ack), dict(self._set_errs)

    async def poll_once(self, *, return_immediately: bool = False) -> PollBatch:
        """One request: report the previous batch, receive and process the next one."""
        body: dict[str, Any] = {"maxEvents": self.max_events, "returnImmediately": return_immediately}
        data = await self._request(body)
        batch = await self._process(data)
        self._note(batch)
        return batch

    async def acknowledge(self) -> None:
        """Send the outstanding ``ack``/``setErrs`` alone (``maxEvents: 0``, R-POLL-4)."""
        if self._ack or self._set_errs:
            await self._request({"maxEvents": 0, "returnImmediately": True})

    def backoff_delay(self) -> float:
        """The wait after ``self.failures`` consecutive failures: exponential, capped, jittered."""
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** max(0, self.failures - 1))
        return base * (0.5 + self.jitter() / 2)

    async def run(self) -> None:
        """Poll until :meth:`stop`; then flush acknowledgements."""
        self._stopping.clear()
        try:
            while not self._stopping.is_set():
                request = asyncio.ensure_future(
                    self._request({"maxEvents": self.max_events, "returnImmediately": False})
                )
                stopping = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({request, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stopping
                if not request.done():
                    request.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await request
                    break
                try:
                    data = request.result()
                except TransmitterError as exc:
                    if exc.status == 404:
                        log.error("stream gone at %s; the poll consumer stops", self.endpoint_url)
                        self.error = self.last_error = exc
                        raise
                    await self._failed(exc)
                    continue
                except (httpx.HTTPError, TokenError) as exc:  # network, or no access token right now
                    await self._failed(exc)
                    continue
                batch = await self._process(data)
                self._note(batch)
                if batch.failed:  # the same SETs would come straight back: give the cause time
                    await self._pause(self.backoff_delay())
                elif batch.deferred:  # the same SETs would come straight back: wait for the keys
                    await self._pause(batch.retry_after)
        finally:
            await self._flush()

    async def stop(self) -> None:
        self._stopping.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PollConsumer]:
        """Run in a background task for the duration of the ``async with`` block."""
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            await self.stop()
            await task  # a stream that is gone (404) surfaces here, not swallowed

    def _note(self, batch: PollBatch) -> None:
        if batch.failed:
            self.failures += 1
        elif not batch.deferred:
            self.failures = 0
            self.last_success_at = self.clock()

    async def _failed(self, exc: Exception) -> None:
        self.last_error = exc
        self.failures += 1
        delay = self.backoff_delay()
        log.warning("poll of %s failed (%s); retrying in %.2f s", self.endpoint_url, exc, delay)
        await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if :meth:`stop` is called."""
        waits = {asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(self.sleep(delay))}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _flush(self) -> None:
        try:
            await self.acknowledge()
        except (httpx.HTTPError, TransmitterError, TokenError) as exc:
            log.warning("could not send the last acknowledgements to %s: %s", self.endpoint_url, exc)

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        ack, errs = list(self._ack), dict(self._set_errs)
        if ack:
            body["ack"] = ack
        if errs:
            body["setErrs"] = errs
        response = await self.http.post(
            self.endpoint_url,
            json=body,
            auth=self.auth if self.auth is not None else httpx.USE_CLIENT_DEFAULT,
            timeout=self.request_timeout,
            headers={"Accept": "application/json"},
        )
        if response.status_code != 200:
            try:
                detail = response.json()
            except ValueError:
                detail = None
            raise TransmitterError.from_body(response.status_code, detail, url=self.endpoint_url)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("sets"), dict):
            raise TransmitterError(
                200, "invalid_response", "a poll response needs a sets object", url=self.endpoint_url
            )
        # Delivered: forget exactly what this request reported (new outcomes may have queued since).
        reported = set(ack)
        self._ack = [j for j in self._ack if j not in reported]
        for jti in errs:
            self._set_errs.pop(jti, None)
        return data

    async def _process(self, data: dict[str, Any]) -> PollBatch:
        sets: dict[str, Any] = data["sets"]
        acknowledged, deferred, failed, retry_after = 0, 0, 0, 0.0
        rejected: dict[str, dict[str, str]] = {}
        for jti, token in sets.items():
            if not isinstance(token, str):
                rejected[jti] = {"err": "invalid_request", "description": "not a compact SET"}
                continue
            try:
                await self.receiver.process(token)
            except SetError as error:
                log.info("refused polled SET %s: %s %s", jti, error.err, error.description)
                rejected[jti] = error.as_dict()
                continue
            except KeysUnavailable as exc:
                log.warning("cannot verify polled SET %s yet: %s", jti, exc)
                deferred += 1
                retry_after = max(retry_after, exc.retry_after)
                continue
            except HandlerFailed as exc:
                log.warning("not acknowledging polled SET %s: %s", jti, exc)
                self.last_error = exc
                failed += 1
                continue
            except Exception as exc:  # a store or handler dependency is down: deliver it again
                log.exception("could not process polled SET %s; it stays unacknowledged", jti)
                self.last_error = exc
                failed += 1
                continue
            acknowledged += 1
            self._ack.append(jti)
        self._set_errs.update(rejected)
        self.batches += 1
        more = bool(data.get("moreAvailable", False))
        return PollBatch(len(sets), acknowledged, rejected, more, deferred, retry_after, failed)
