"""Carries long-poll and push wake-ups between hub replicas over Redis pub/sub.

A SET queued on replica B may be waited for on replica A: a long poll held there, or A's
push worker holding the stream's lease. B's :class:`~hub.wakeup.QueueSignal` hands the
stream ids to :meth:`RedisWakeupRelay.publish`; the relay PUBLISHes them on one channel,
and every replica's relay, SUBSCRIBEd to it, applies what the others published with
:meth:`~hub.wakeup.QueueSignal.notify_local`. One pub/sub connection per process serves
every stream and nothing polls Redis (research/delivery.md, "What an SSF hub should
adopt" §9).

Pub/sub is fire-and-forget: a replica that is disconnected misses what is published
meanwhile. Correctness never rests on it (the SETs are in the store, the push sweep looks
for pending work every few seconds, a long poll re-reads the queue when it times out);
to shorten that gap, a relay that subscribes again wakes every long poll waiting in its
process, so they re-read the queue at once. Lost connections are retried with capped,
jittered backoff for as long as the hub runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from hub.core.backoff import ReconnectBackoff
from hub.store.outages import STORE_OUTAGES, describe_outage
from hub.store.redis_keys import prefix
from hub.wakeup import QueueSignal

log = logging.getLogger("hub.wakeup")

# The one channel every replica of a deployment shares ("ssfhub:v1:wakeup"). Classic, not
# sharded, pub/sub: on Redis Cluster it reaches every node's subscribers, whatever slot a
# stream's keys are in.
CHANNEL = prefix() + "wakeup"
# An outage, or a Redis that refuses the relay (an ACL without PUBLISH/SUBSCRIBE): either
# way the relay logs, backs off and keeps trying rather than dying quietly.
RELAY_ERRORS: tuple[type[Exception], ...] = (*STORE_OUTAGES, RedisError)
MAX_IDS_PER_MESSAGE = 500  # keeps one message well under a few tens of KiB
CONNECT_TIMEOUT = 2.0
PUBLISH_TIMEOUT = 2.0


class RedisWakeupRelay:
    def __init__(
        self,
        publisher: Redis,
        subscriber: Redis,
        signal: QueueSignal,
        *,
        channel: str = CHANNEL,
        backoff: ReconnectBackoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.publisher, self.subscriber = publisher, subscriber
        self.signal = signal
        self.channel = channel
        self.origin = uuid.uuid4().hex  # messages this process published come back to it: skip them
        self.backoff = backoff or ReconnectBackoff()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.subscribed = asyncio.Event()  # set while the subscription is live
        self.received = 0  # wake-ups applied from other replicas
        self._outbox: dict[str, None] = {}  # stream ids to publish, in order, without repeats
        self._outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._publish_failing = False

    @classmethod
    def from_url(cls, url: str, signal: QueueSignal, **options: Any) -> RedisWakeupRelay:
        # Publishing retries once at once, for a pooled connection that went stale while Redis
        # restarted; beyond that a wake-up is better dropped than late. The subscriber never
        # retries inside redis-py: a lost subscription must reach _listen_forever, which
        # backs off and then wakes the long polls that may have missed a message.
        publisher = Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=PUBLISH_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            retry_on_error=[RedisConnectionError],
        )
        subscriber = Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 0))
        return cls(publisher, subscriber, signal, **options)

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Relay this process's notifications and listen for the others' (in the background:
        a Redis that is down at start-up is retried, not fatal)."""
        self.signal.relay_to(self.publish)
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="wakeup-listen"),
            asyncio.create_task(self._publish_forever(), name="wakeup-publish"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.publisher.aclose()
        await self.subscriber.aclose()

    # -- outbound ----------------------------------------------------------------------------------
    def publish(self, stream_ids: Sequence[str]) -> None:
        """Queue ``stream_ids`` for the other replicas (called from ``QueueSignal.notify``).

        Synchronous on purpose: the caller has just committed a SET and must not wait on
        a second Redis round trip; ids queued in the same loop turn share one message.
        """
        for stream_id in stream_ids:
            self._outbox[stream_id] = None
        if self._outbox:
            self._outbox_ready.set()

    async def _publish_forever(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            ids, self._outbox = list(self._outbox), {}
            for start in range(0, len(ids), MAX_IDS_PER_MESSAGE):
                await self._publish_one(ids[start : start + MAX_IDS_PER_MESSAGE])

    async def _publish_one(self, ids: list[str]) -> None:
        payload = json.dumps({"from": self.origin, "streams": ids}, separators=(",", ":"))
        try:
            await self.publisher.publish(self.channel, payload)
        except RELAY_ERRORS as exc:
            # Dropped: the other replicas' sweeps and long-poll timeouts cover it.
            if not self._publish_failing:
                log.warning("cannot publish wake-ups to other replicas: %s", describe_outage(exc))
            self._publish_failing = True
            return
        if self._publish_failing:
            log.info("publishing wake-ups to other replicas again")
        self._publish_failing = False

    # -- inbound -----------------------------------------------------------------------------------
    async def _listen_forever(self) -> None:
        attempt = 0
        while True:
            pubsub = self.subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if attempt:
                    log.info("wake-up channel subscribed again after %d failed attempt(s)", attempt)
                attempt = 0
                # Anything published while we were away is lost: let waiting polls re-read now.
                self.signal.notify_local(self.signal.waiting_stream_ids())
                await self._receive(pubsub)
            except RELAY_ERRORS as exc:
                self.subscribed.clear()
                delay = self.backoff.delay(attempt, self.rng)
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(
                    level, "wake-up channel lost (%s); reconnecting in %.2f s", describe_outage(exc), delay
                )
                attempt += 1
                await asyncio.sleep(delay)
            finally:
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py

    async def _receive(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is None or message.get("type") != "message":
                continue
            stream_ids = self._parse(message.get("data"))
            if stream_ids:
                self.received += 1
                self.signal.notify_local(stream_ids)

    def _parse(self, data: object) -> list[str]:
        try:
            body = json.loads(data) if isinstance(data, bytes | str) else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("streams"), list):
            log.debug("ignoring a malformed wake-up message: %r", data)
            return []
        if body.get("from") == self.origin:
            return []  # our own: this process was woken when it published
        return [s for s in body["streams"] if isinstance(s, str)]
