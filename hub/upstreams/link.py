"""One upstream subscription kept alive: discover, subscribe, verify, follow, re-subscribe.

A connection runs in steps. Discover the transmitter (``ssf-configuration``, then the legacy
``sse-`` and ``risc-configuration`` names, AMB-1) and trust its issuer and ``jwks_uri`` for
ingest. Find the stream the hub made there before, or create one (R-STREAM-5): push streams
point at the hub's ``/ssf/ingest`` with a hub-minted ``ssf.ingest`` token as their
``authorization_header`` (R-PUSH-9), poll streams get long-polled with ``ack``/``setErrs``
(R-POLL-*). Ask for verification with a fresh ``state`` and wait for it to come back
(R-VERIFY-1). Then, every ``check_interval``: read the stream (a 404 means it is gone: create
it again), read its status and ask for ``enabled`` if the transmitter paused or disabled it
(R-STATUS-3), and renew the push token before it expires. ``stream-updated`` events update the
recorded status as they arrive (R-SSFEV-2); one that says paused or disabled starts a check at
once. A transmitter sends it *before* it stops (R-STATUS-7), so a status read that still says
``enabled`` is repeated every ``announced_recheck`` for ``announced_window``.

Any failure is recorded in the upstream's state and retried after a doubling backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx

from hub import logs
from hub.core.upstreams import DeliveryMode, Health, Upstream, backoff_delay, choose_delivery
from hub.errors import HubError
from hub.store.base import Store
from hub.upstreams.credentials import token_source
from hub.upstreams.errors import (
    AudienceMismatch,
    StreamGone,
    UpstreamError,
    VerificationTimeout,
    describe,
    raise_if_poll_ended,
)
from hub.upstreams.feed import IngestSink, UpstreamFeed
from hub.upstreams.peer import UpstreamClient, discover
from hub.upstreams.record import LinkRecord
from hub.upstreams.writes import PushToken, StreamReplaced, StreamWrites
from receivers.client import StreamClient, StreamConfig
from receivers.errors import ReceiverError, TransmitterError
from receivers.events import STREAM_UPDATED, VERIFICATION
from receivers.poll import PollConsumer

log = logging.getLogger("hub.upstreams")

MintIngestToken = Callable[[str, int], str]  # (sub, ttl seconds) -> a token holding ssf.ingest
TrustIssuer = Callable[[str, str], Awaitable[None]]  # (iss, jwks_uri)
MAX_ECHOED = 100  # verification states kept per attempt; more would be a flood, not an answer


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    ingest_url: str  # the hub's own /ssf/ingest, for push streams
    audience: str  # the hub's issuer URL: ingest accepts only SETs whose aud names it
    allow_http: bool | None = None  # None: http only to loopback hosts (receivers.discovery)
    check_interval: float = 60.0
    verify_timeout: float = 30.0
    ingest_token_ttl: int = 90 * 86400
    backoff_initial: float = 1.0
    backoff_cap: float = 300.0
    poll_max_events: int = 100
    announced_recheck: float = 1.0
    announced_window: float = 15.0


class UpstreamLink(LinkRecord):
    def __init__(
        self,
        upstream: Upstream,
        *,
        store: Store,
        http: httpx.AsyncClient,
        policy: LinkPolicy,
        sink: IngestSink,
        trust_issuer: TrustIssuer,
        mint_ingest_token: MintIngestToken,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(upstream, store=store, clock=clock)
        self.http = http
        self.policy = policy
        self.sink = sink
        self.trust_issuer = trust_issuer
        self.mint_ingest_token = mint_ingest_token
        self.client: UpstreamClient | None = None
        self.mode: DeliveryMode = upstream.delivery or DeliveryMode.POLL  # set from metadata at connect
        self.writes: StreamWrites | None = None
        self.renewal = upstream.compatibility.renewal  # recreate, once a renewal was ignored
        # Verification states echoed back. A pushed event can arrive before the request that
        # asked for it has returned, so arrivals are kept, not matched against a pending ask.
        self._echoed: set[str] = set()
        self._echo = asyncio.Event()
        self._wake = asyncio.Event()
        self._announced_until: float | None = None  # loop time: a stop was announced, not yet seen

    # -- the loop ------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect and follow until cancelled, backing off after each failure."""
        try:
            while True:
                await self._attempt()
                delay = backoff_delay(
                    self.state.failures, initial=self.policy.backoff_initial, cap=self.policy.backoff_cap
                )
                await asyncio.sleep(delay)
        finally:
            if self._event_save is not None:  # this process no longer speaks for the upstream
                self._event_save.cancel()

    async def _attempt(self) -> None:
        try:
            await self._connect_and_follow()
        except StreamReplaced as replaced:
            if self.writes is not None:
                self.renewal = self.writes.renewal  # what worked is used from the start next time
            # Not a failure: the link verifies the new stream at once (issue #15).
            await self._save(
                replace(
                    self.state,
                    stream_id=replaced.stream.stream_id,
                    ingest_token_expires_at=replaced.expires_at,
                    remote_status=None,
                    verified_at=None,
                )
            )
        except StreamGone:
            # Counted as a failure, so a transmitter that keeps losing streams is not asked
            # for a new one in a tight loop.
            gone = self.state.stream_id
            await self._failed(
                StreamGone(f"stream {gone} was deleted at the transmitter; creating a new one")
            )
            await self._save(replace(self.state, stream_id=None, remote_status=None, verified_at=None))
        except (UpstreamError, ReceiverError, HubError, httpx.HTTPError, OSError) as exc:
            await self._failed(exc)
        except Exception as exc:  # a bug must not end the subscription for good
            log.exception("upstream %s: unexpected error", self.upstream_id)
            await self._failed(exc)

    async def _connect_and_follow(self) -> None:
        source = token_source(self.upstream.token_source, http=self.http)
        client = await discover(self.upstream, http=self.http, auth=source, allow_http=self.policy.allow_http)
        self.client = client
        metadata = client.metadata
        self.mode = choose_delivery(self.upstream.delivery, metadata.delivery_methods_supported)
        self.writes = writes = StreamWrites(
            self.upstream,
            client,
            mode=self.mode,
            push=PushToken(
                mint=lambda: self.mint_ingest_token(
                    f"upstream:{self.upstream_id}", self.policy.ingest_token_ttl
                ),
                ttl=self.policy.ingest_token_ttl,
                ingest_url=self.policy.ingest_url,
            ),
            clock=self.clock,
            adapt=self._adapt,
            renewal=self.renewal,
        )
        expected = self.upstream.compatibility.expected_issuer
        if expected is not None:
            writes.used("expected_issuer", issuer=metadata.issuer, served_from=self.upstream.issuer_hint)
        if self.upstream.delivery is None and self.state.delivery != self.mode.value:
            logs.event(
                log,
                logging.INFO,
                "upstream_delivery_chosen",
                upstream_id=self.upstream_id,
                delivery=self.mode.value,
                methods_supported=list(metadata.delivery_methods_supported),
            )
        await self.trust_issuer(metadata.issuer, metadata.jwks_uri)
        await self._save(
            replace(self.state, issuer=metadata.issuer, jwks_uri=metadata.jwks_uri, delivery=self.mode.value)
        )
        stream = await self._ensure_stream(client, writes)
        await self._save(
            replace(
                self.state,
                stream_id=stream.stream_id,
                health=Health.CONNECTING,
                connected_at=self.clock(),
            )
        )
        if self.policy.audience not in stream.aud:  # kept: retries must not make more streams
            raise AudienceMismatch(
                f"stream {stream.stream_id} is for aud {list(stream.aud)}; ingest accepts only SETs whose "
                f"aud names {self.policy.audience}: fix the hub's client at the transmitter, or send "
                f"aud when creating the stream (compatibility create_fields)"
            )
        consumer = self._poll_consumer(client, stream) if self.mode is DeliveryMode.POLL else None
        polling = asyncio.create_task(consumer.run()) if consumer is not None else None
        try:
            await self._verify(client, stream, polling)
            await self._save(
                replace(
                    self.state,
                    health=Health.HEALTHY,
                    verified_at=self.clock(),
                    failures=0,
                )
            )
            log.info(
                "upstream %s: stream %s at %s verified", self.upstream_id, stream.stream_id, metadata.issuer
            )
            await self._follow(client, stream, polling)
        finally:
            if polling is not None:
                await _stop(consumer, polling)

    # -- steps ---------------------------------------------------------------------------------------
    async def _ensure_stream(self, client: StreamClient, writes: StreamWrites) -> StreamConfig:
        if self.state.stream_id is not None:
            try:
                stream = await client.get_stream(self.state.stream_id)
            except TransmitterError as exc:
                if exc.status != 404:
                    raise
            else:
                return await self._renew_push_token(stream, force=self.state.ingest_token_expires_at is None)
        stream, expires_at = await writes.create()
        self.state = replace(self.state, ingest_token_expires_at=expires_at)
        log.info("upstream %s: created stream %s (%s)", self.upstream_id, stream.stream_id, self.mode)
        return stream

    async def _renew_push_token(self, stream: StreamConfig, *, force: bool) -> StreamConfig:
        """Give a push stream a fresh ingest token once two thirds of the old one's life is gone."""
        if self.mode is not DeliveryMode.PUSH or self.writes is None:
            return stream
        expires = self.state.ingest_token_expires_at
        if not force and expires is not None and expires - self.clock() > self.policy.ingest_token_ttl / 3:
            return stream
        updated, expires_at = await self.writes.renew(stream)
        await self._save(replace(self.state, ingest_token_expires_at=expires_at))
        return updated

    def _poll_consumer(self, client: StreamClient, stream: StreamConfig) -> PollConsumer:
        if stream.endpoint_url is None:
            raise TransmitterError(
                200, "invalid_response", f"poll stream {stream.stream_id} has no endpoint_url"
            )
        feed = UpstreamFeed(
            client.receiver(stream),
            self.sink,
            on_control=self.control_event,
            on_event=self.event_seen,
            on_refused=self.set_refused,
        )
        return PollConsumer(
            stream.endpoint_url,
            feed,
            http=self.http,
            auth=client.auth,
            max_events=self.policy.poll_max_events,
            backoff_max=self.policy.backoff_cap,
        )

    async def _verify(
        self, client: StreamClient, stream: StreamConfig, polling: asyncio.Task[None] | None
    ) -> None:
        self._echoed.clear()
        state = await client.request_verification(stream.stream_id)
        deadline = asyncio.get_running_loop().time() + self.policy.verify_timeout
        while state not in self._echoed:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise VerificationTimeout(
                    f"the verification event for stream {stream.stream_id} did not arrive within "
                    f"{self.policy.verify_timeout:g} s"
                )
            self._echo.clear()
            waiting = asyncio.ensure_future(self._echo.wait())
            watched: set[asyncio.Future[Any]] = {waiting} if polling is None else {waiting, polling}
            try:
                done, _ = await asyncio.wait(watched, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if polling is not None and polling in done:
                raise_if_poll_ended(polling)

    async def _follow(
        self, client: StreamClient, stream: StreamConfig, polling: asyncio.Task[None] | None
    ) -> None:
        while True:
            # A wake-up is cleared only just before the check that answers it: one that came
            # while verifying or during the last check (a pause it did not see) checks again.
            watched: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
            if polling is not None:
                watched.add(polling)
            done, pending = await asyncio.wait(
                watched, timeout=self._next_check_in(), return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending - {polling}:
                waiter.cancel()
            if polling is not None and polling in done:
                raise_if_poll_ended(polling)
            self._wake.clear()
            stream = await self._check(client, stream)

    def _next_check_in(self) -> float:
        if self._announced_until is not None:
            if asyncio.get_running_loop().time() < self._announced_until:
                return min(self.policy.check_interval, self.policy.announced_recheck)
            self._announced_until = None
        return self.policy.check_interval

    async def _check(self, client: StreamClient, stream: StreamConfig) -> StreamConfig:
        try:
            stream = await client.get_stream(stream.stream_id)
            status = await client.get_status(stream.stream_id)
        except TransmitterError as exc:
            if exc.status == 404:
                raise StreamGone(stream.stream_id) from exc
            raise
        if status.status != "enabled":
            self._announced_until = None  # the announced stop is here, and answered now
            # The hub wants its events; a receiver may enable its own stream (R-STATUS-3).
            try:
                status = await client.set_status(
                    stream.stream_id, "enabled", reason="ssf-hub re-enabled its subscription"
                )
            except TransmitterError as exc:
                if exc.status == 404:
                    raise StreamGone(stream.stream_id) from exc
                if exc.status != 202:  # 202: the transmitter has not decided yet (R-STATUS-3)
                    await self._reenable_refused(stream, status.status, status.reason, exc)
                return await self._renew_push_token(stream, force=False)
        state = replace(self.state, remote_status=status.status, remote_status_reason=status.reason)
        if state.health is Health.DEGRADED:  # enabled again: the refusal is over
            state = replace(state, health=Health.HEALTHY, last_error=None)
        await self._save(state)
        return await self._renew_push_token(stream, force=False)

    # -- events about this subscription (poll feed, or ingest for push) ------------------------------------
    async def control_event(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """A verified verification or stream-updated event for this link's stream."""
        if event_type == VERIFICATION:
            state = payload.get("state")
            if isinstance(state, str) and len(self._echoed) < MAX_ECHOED:
                self._echoed.add(state)
                self._echo.set()
        elif event_type == STREAM_UPDATED:
            status, reason = payload.get("status"), payload.get("reason")
            log.info("upstream %s: the transmitter set the stream %s", self.upstream_id, status)
            await self._save(
                replace(
                    self.state,
                    remote_status=status if isinstance(status, str) else None,
                    remote_status_reason=reason if isinstance(reason, str) else None,
                )
            )
            if status != "enabled":
                window = self.policy.announced_window
                self._announced_until = asyncio.get_running_loop().time() + window
                self._wake.set()  # ask for it back now, not at the next check
            else:
                self._announced_until = None

    # -- removal --------------------------------------------------------------------------------------------
    async def delete_remote_stream(self) -> None:
        """Best effort, when the operator removed the upstream: the stream there is not ours any more."""
        if self.client is None or self.state.stream_id is None:
            return
        try:
            await self.client.delete_stream(self.state.stream_id)
        except (ReceiverError, httpx.HTTPError) as exc:
            log.warning(
                "upstream %s: could not delete stream %s: %s",
                self.upstream_id,
                self.state.stream_id,
                describe(exc),
            )


async def _stop(consumer: PollConsumer | None, polling: asyncio.Task[None]) -> None:
    if consumer is not None:
        await consumer.stop()
    try:
        await asyncio.wait_for(asyncio.shield(polling), timeout=5)
    except (TimeoutError, asyncio.CancelledError, Exception):
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await polling
