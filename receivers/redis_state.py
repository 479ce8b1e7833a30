"""Receiver state in Redis, shared by every replica of a gateway (redis-py asyncio).

``RedisState(url)`` gives a :class:`~receivers.stores.RevocationStore` (``.revocations``), a
:class:`~receivers.stores.PolicyStore` (``.policy``) and a :class:`~receivers.stores.DedupStore`
(``.dedup``) over one Redis, so N replicas — polling one stream together, or each its own —
refuse the same callers whichever replica heard the signal::

    async with RedisState("redis://redis:6379/0") as state:
        access = ContinuousAccess(revocations=state.revocations, policy_store=state.policy)
        receiver = client.receiver(stream, dispatcher=access.dispatcher, dedup=state.dedup)

Layout (``prefix`` defaults to ``ssf-receivers:``), every key with a TTL:

- ``rev:<h>``: a hash per simple identifier (``h`` = SHA-256 of one
  :func:`~receivers.subjects.index_keys` entry of the revoked subject), one field per
  (``iss``, ``jti``, subject), the revocation as JSON; the key lives ``retention`` seconds after
  its last write and an entry older than that is ignored on read;
- ``subj:<h>``: a subject's policy facts, their event times, the facts version and the current
  decision, for ``policy_ttl`` seconds after its last change; folds and decisions are
  optimistic transactions (``WATCH``), so concurrent replicas never lose an update;
- ``den:<h>``: per simple identifier, the subjects whose current decision is a denial;
- ``dedup:<h>``: one key per (``iss``, ``jti``) whose handlers succeeded, for ``dedup_ttl``;
- channel ``changes``: each write publishes the ``rev:``/``den:`` keys it touched.

A check reads the ``rev:``/``den:`` hashes of the caller's identifiers. Each replica caches what
it read, per key, for at most ``cache_ttl`` seconds and drops a key as soon as the ``changes``
channel names it, so a cache hit stays in process (sub-millisecond) and a revocation recorded
by another replica is in force here once its message arrives (a round trip). The cache is only
used while the channel is subscribed: after a lost subscription it is emptied and every check
reads Redis until it is back (``cache_ttl`` bounds the staleness of a connection that died
silently). ``await state.sync()`` returns once every change published before it (by any
replica) has reached this replica's cache. Redis being unreachable makes a check raise — the
middleware then answers ``503``.

A single Redis server (or Sentinel); the multi-key transactions are not laid out for Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from receivers.redis_stores import RedisPolicyStore, RedisRevocationStore, digest

__all__ = ["RedisDedupStore", "RedisPolicyStore", "RedisRevocationStore", "RedisState"]

log = logging.getLogger("receivers.redis_state")


class _Cache:
    """What this replica last read of some ``rev:``/``den:`` keys, each for ``ttl`` seconds.

    ``epoch`` moves on every invalidation; a read started before one is not cached (it may
    predate the change it announced)."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self.epoch = 0
        self.enabled = False
        self._items: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> list[dict[str, Any]] | None:
        item = self._items.get(key) if self.enabled else None
        if item is None or item[0] <= self.clock():
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key: str, value: list[dict[str, Any]], epoch: int) -> None:
        if not self.enabled or epoch != self.epoch:
            return
        self._items[key] = (self.clock() + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def invalidate(self, keys: Iterable[str]) -> None:
        self.epoch += 1
        for key in keys:
            self._items.pop(key, None)

    def clear(self) -> None:
        self.epoch += 1
        self._items.clear()


class RedisState:
    """The three receiver stores over one Redis; see the module docstring. Use as an async
    context manager (or :meth:`start`/:meth:`close`) so the change listener runs."""

    def __init__(
        self,
        redis: Redis | str,
        *,
        prefix: str = "ssf-receivers:",
        retention: float = 24 * 3600.0,
        policy_ttl: float = 24 * 3600.0,
        dedup_ttl: float = 7 * 24 * 3600.0,
        cache_ttl: float = 10.0,
        cache_size: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis: Redis = (
            Redis.from_url(redis, health_check_interval=5) if isinstance(redis, str) else redis
        )
        self._owns_client = isinstance(redis, str)
        self.prefix = prefix
        self.channel = prefix + "changes"
        self.retention = retention
        self.policy_ttl = policy_ttl
        self.dedup_ttl = dedup_ttl
        self.clock = clock
        self.cache = _Cache(cache_ttl, cache_size)
        self.revocations = RedisRevocationStore(self)
        self.policy = RedisPolicyStore(self)
        self.dedup = RedisDedupStore(self)
        self.subscribed = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._syncs: dict[str, asyncio.Future[None]] = {}

    @property
    def listening(self) -> bool:
        return self.cache.enabled

    async def start(self, *, wait: float = 5.0) -> None:
        """Start listening for changes; waits up to ``wait`` seconds for the subscription (a
        Redis that is down is retried in the background; checks read Redis until then)."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen_forever(), name="receivers-redis-changes")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), wait)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._owns_client:
            await self.redis.aclose()

    async def __aenter__(self) -> RedisState:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def sync(self, *, wait: float = 5.0) -> None:
        """Return once every change published before this call (by any replica) has reached this
        replica's cache: a marker goes through the channel behind them."""
        marker = uuid.uuid4().hex
        arrived = self._syncs[marker] = asyncio.get_running_loop().create_future()
        try:
            await self.redis.publish(self.channel, json.dumps({"sync": marker}))
            await asyncio.wait_for(arrived, wait)
        finally:
            self._syncs.pop(marker, None)

    # -- shared by the stores ---------------------------------------------------------------------
    def key(self, name: str) -> str:
        return self.prefix + name

    async def read(self, cache_keys: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The JSON values of the ``rev:``/``den:`` hashes named, from the cache or Redis."""
        epoch = self.cache.epoch
        found: dict[str, list[dict[str, Any]]] = {}
        missing: list[str] = []
        for key in cache_keys:
            cached = self.cache.get(key)
            if cached is None:
                missing.append(key)
            else:
                found[key] = cached
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for key in missing:
                pipe.hvals(self.key(key))
            for key, values in zip(missing, await pipe.execute(), strict=True):
                decoded = [json.loads(v) for v in values]
                found[key] = decoded
                self.cache.put(key, decoded, epoch)
        return found

    def _received(self, data: object) -> None:
        try:
            body = json.loads(data) if isinstance(data, bytes | str) else None
        except ValueError:
            return
        if isinstance(body, dict):  # a sync marker
            waiting = self._syncs.get(str(body.get("sync")))
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
            return
        if isinstance(body, list):
            self.cache.invalidate(k for k in body if isinstance(k, str))
            self._notify()

    def changed(self, cache_keys: list[str]) -> None:
        """This replica wrote ``cache_keys``: forget them here and tell the listeners."""
        self.cache.invalidate(cache_keys)
        self._notify()

    def _notify(self) -> None:
        self.revocations.notify()
        self.policy.notify()

    async def _listen_forever(self) -> None:
        attempt = 0
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.cache.clear()  # whatever was published while away is unknown
                self.cache.enabled = True
                self.subscribed.set()
                if attempt:
                    log.info("receiver state: change channel subscribed again")
                attempt = 0
                self._notify()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    self._received(message["data"])
            except (RedisError, OSError) as exc:
                self.cache.enabled = False
                self.cache.clear()
                self.subscribed.clear()
                delay = min(5.0, 0.1 * 2**attempt)
                log.warning("receiver state: change channel lost (%s); retrying in %.1f s", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
            finally:
                self.cache.enabled = False
                self.subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


class RedisDedupStore:
    """(``iss``, ``jti``) pairs whose handlers succeeded, each for ``dedup_ttl`` seconds."""

    def __init__(self, state: RedisState) -> None:
        self.state = state

    def _key(self, iss: str, jti: str) -> str:
        return self.state.key("dedup:" + digest(f"{iss}\x1f{jti}"))

    async def seen(self, iss: str, jti: str) -> bool:
        return bool(await self.state.redis.exists(self._key(iss, jti)))

    async def remember(self, iss: str, jti: str) -> None:
        await self.state.redis.set(self._key(iss, jti), b"1", ex=math.ceil(self.state.dedup_ttl), nx=True)

    async def horizon(self) -> float:
        return self.state.clock() - self.state.dedup_ttl
