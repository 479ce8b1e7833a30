"""Carries long-poll and push wake-ups between hub replicas over Redis pub/sub.

A SET queued on replica B may be waited for on replica A: a long poll held there, or A's
push worker holding the stream's lease. B's :class:`~hub.delivery.wakeup.QueueSignal` hands the
stream ids to :meth:`RedisWakeupRelay.publish`; the relay PUBLISHes them on one channel,
and every replica's relay, SUBSCRIBEd to it, applies what the others published with
:meth:`~hub.delivery.wakeup.QueueSignal.notify_local`. One pub/sub connection per process serves
every stream and nothing polls Redis (research/delivery.md, "What an SSF hub should
adopt" §9).

Pub/sub is fire-and-forget: a replica that is disconnected misses what is published
meanwhile. Correctness never rests on it (the SETs are in the store, the push sweep looks
for pending work every few seconds, a long poll re-reads the queue when it times out);
to shorten that gap, a relay that subscribes again wakes every long poll waiting in its
process, so they re-read the queue at once. Lost connections are retried with capped,
jittered backoff for as long as the hub runs.

The same subscription carries the store's change channel when the relay is given the
store's :class:`~hub.store.redis_cache.RecordCache`: the ids of streams whose record or
subjects changed on any replica empty the cache's entries for them, and the cache is used
only while the subscription is confirmed (``redis_cache``).

On a Redis Cluster (found as the store finds it: ``INFO cluster`` on the URL's node, or a
``redis+cluster://`` URL) the relay publishes through redis-py's ``RedisCluster`` and
subscribes on one plain connection to one node: classic PUBLISH reaches the subscribers
of every node over the cluster bus. A subscription that is lost moves on to the next node
the cluster knows, so one node going away does not silence the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from hub.core.backoff import ReconnectBackoff
from hub.delivery.wakeup import QueueSignal
from hub.store.outages import STORE_OUTAGES, describe_outage
from hub.store.redis_cache import RecordCache
from hub.store.redis_engine import cluster_url
from hub.store.redis_keys import prefix

log = logging.getLogger("hub.wakeup")

# The one channel every replica of a deployment shares ("ssfhub:v2:wakeup"). Classic, not
# sharded, pub/sub: on Redis Cluster it reaches every node's subscribers, whatever slot a
# stream's keys are in.
CHANNEL = prefix() + "wakeup"
# An outage, or a Redis that refuses the relay (an ACL without PUBLISH/SUBSCRIBE): either
# way the relay logs, backs off and keeps trying rather than dying quietly.
RELAY_ERRORS: tuple[type[Exception], ...] = (*STORE_OUTAGES, RedisError, RedisClusterException)
MAX_IDS_PER_MESSAGE = 500  # keeps one message well under a few tens of KiB
CONNECT_TIMEOUT = 2.0
PUBLISH_TIMEOUT = 2.0


class RedisWakeupRelay:
    def __init__(
        self,
        url: str,
        signal: QueueSignal,
        *,
        channel: str = CHANNEL,
        backoff: ReconnectBackoff | None = None,
        rng: random.Random | None = None,
        records: RecordCache | None = None,
        changes_channel: str | None = None,
    ) -> None:
        self.url = url
        self.signal = signal
        self.channel = channel
        # The store's cache and its change channel (RedisKeys.changes_channel), if any.
        self.records = records if changes_channel is not None else None
        self.changes_channel = changes_channel
        self.origin = uuid.uuid4().hex  # messages this process published come back to it: skip them
        self.backoff = backoff or ReconnectBackoff()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.subscribed = asyncio.Event()  # set while the subscription is live
        self.received = 0  # wake-ups applied from other replicas
        self.cluster = False  # known once Redis first answered
        self.subscribed_at: str | None = None  # the node (host:port) of the live subscription
        self._publisher: Redis | RedisCluster | None = None  # made once Redis first answers
        self._node_urls: list[str] = []  # on a cluster: where to subscribe, tried in turn
        self._connecting = asyncio.Lock()
        self._outbox: dict[str, None] = {}  # stream ids to publish, in order, without repeats
        self._outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._publish_failing = False

    @classmethod
    def from_url(cls, url: str, signal: QueueSignal, **options: Any) -> RedisWakeupRelay:
        return cls(url, signal, **options)

    # -- connections -------------------------------------------------------------------------------
    async def _connect(self) -> Redis | RedisCluster:
        """The publisher, made on first use: a plain client, or a cluster client when the
        URL's node is part of a cluster (then also the nodes to subscribe at)."""
        async with self._connecting:
            if self._publisher is not None:
                return self._publisher
            # Publishing retries once at once, for a pooled connection that went stale while
            # Redis restarted; beyond that a wake-up is better dropped than late.
            options: dict[str, Any] = {
                "socket_connect_timeout": CONNECT_TIMEOUT,
                "socket_timeout": PUBLISH_TIMEOUT,
                "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                "retry_on_error": [RedisConnectionError],
            }
            url = cluster_url(self.url)
            if url is None:
                single = Redis.from_url(self.url, **options)
                try:
                    clustered = bool((await single.info("cluster")).get("cluster_enabled"))
                except ResponseError:  # an ACL that refuses INFO: take the URL at its word
                    clustered = False
                except BaseException:
                    await single.aclose()
                    raise
                if not clustered:
                    self._publisher = single
                    return single
                await single.aclose()
                url = self.url
            cluster = RedisCluster.from_url(url, **options)
            try:
                await cluster.initialize()
            except BaseException:
                await cluster.aclose()
                raise
            parts = urlsplit(url)
            userinfo = parts.netloc.rpartition("@")[0]
            # The URL's own node first (an operator may point each replica at a different
            # one), then every other primary.
            nodes = sorted(
                cluster.get_primaries(), key=lambda n: (n.host, n.port) != (parts.hostname, parts.port)
            )
            self._node_urls = [
                urlunsplit(parts._replace(netloc=(f"{userinfo}@" if userinfo else "") + f"{n.host}:{n.port}"))
                for n in nodes
            ]
            self.cluster = True
            self._publisher = cluster
            return cluster

    def _subscriber(self, attempt: int) -> Redis:
        """A plain connection for SUBSCRIBE: the URL's node, or the cluster's nodes in turn.
        It never retries inside redis-py: a lost subscription must reach _listen_forever,
        which backs off and then wakes the long polls that may have missed a message."""
        urls = self._node_urls or [self.url]
        url = urls[attempt % len(urls)]
        self.subscribed_at = urlsplit(url).netloc.rpartition("@")[2]
        return Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, retry=Retry(NoBackoff(), 0))

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
        if self._publisher is not None:
            await self._publisher.aclose()

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
            publisher = await self._connect()
            await publisher.publish(self.channel, payload)
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
            subscriber: Redis | None = None
            pubsub: PubSub | None = None
            try:
                await self._connect()  # learns whether this is a cluster, and its nodes
                subscriber = self._subscriber(attempt)
                pubsub = subscriber.pubsub()
                channels = [self.channel]
                if self.changes_channel is not None:
                    channels.append(self.changes_channel)
                await pubsub.subscribe(*channels)
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
                if self.records is not None:
                    self.records.disconnected()
                with contextlib.suppress(Exception):
                    if pubsub is not None:
                        # Through a typed name: redis-py annotates aclose only from 8.x on, and
                        # this must type-check against both.
                        close_pubsub: Callable[[], Awaitable[None]] = pubsub.aclose
                        await close_pubsub()
                    if subscriber is not None:
                        await subscriber.aclose()

    async def _receive(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind, channel = message.get("type"), _text(message.get("channel"))
            if channel == self.changes_channel and self.records is not None:
                if kind == "subscribe":
                    # Redis confirmed it: every change from now on reaches this process.
                    self.records.connected()
                elif kind == "message":
                    self.records.changed([_text(message.get("data"))])
                continue
            if kind != "message":
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


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
