"""The plumbing under the Redis store: one asyncio client, its scripts, and error mapping.

The client is a plain one for a single Redis primary, or redis-py's ``RedisCluster`` when
the URL's node says ``cluster_enabled:1`` (``INFO cluster``) or the URL is written
``redis+cluster://`` / ``rediss+cluster://``. The store code is the same for both: every
script declares its keys, all in one slot; MULTI is used only within ``{hub}``; scripts
for several streams run pipelined on one Redis and as concurrent calls on a cluster
(redis-py does not pipeline EVALSHA there), each of them atomic on its own.

A Redis that does not answer surfaces as :class:`~hub.errors.Unavailable` (503 with
``Retry-After``), never as a redis-py exception: the client retries a failed command a
few times with capped, jittered backoff and then gives up quickly, so a request fails
fast during an outage and the next one reconnects.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeAlias, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    BusyLoadingError,
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from hub.errors import ConfigError, StoreUnavailable, Unavailable
from hub.store.redis_batching import CommandBatcher
from hub.store.redis_cache import RecordCache
from hub.store.redis_keys import DEFAULT_NAMESPACE, RedisKeys
from hub.store.sealing import Plain, Sealer

_log = logging.getLogger("hub.store")

P = ParamSpec("P")
T = TypeVar("T")

CONNECT_TIMEOUT = 2.0
# A Redis that hangs (stopped, partitioned) must cost a request seconds, not tens of them:
# a timed-out command is not retried (it may have run), so this is the whole wait.
COMMAND_TIMEOUT = 2.0
RETRIES = 2  # per command, before the caller sees Unavailable
MAX_CONNECTIONS = 100  # per process (redis-py's default size, but waiting when all are busy)
BACKOFF_CAP = 0.5
RETRY_AFTER = 2  # seconds a client is told to wait when Redis is down
# Scripts of different slots in flight at once on a cluster (they cannot be pipelined):
# enough to fan one emit out fast, few enough to leave the pool to other requests.
CLUSTER_SCRIPT_CONCURRENCY = 32
URL_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

Client: TypeAlias = aioredis.Redis | RedisCluster
ScriptCall: TypeAlias = tuple[str, Sequence[str], Sequence[Any]]  # source, KEYS, ARGV


class Command(NamedTuple):
    """One plain Redis command in a pipeline of steps (``RedisEngine._bracketed``)."""

    args: tuple[Any, ...]


Step: TypeAlias = ScriptCall | Command

# Errors that mean "Redis cannot serve right now", as opposed to a bug in a command.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,  # a replica promoted mid-failover
    ClusterError,  # CLUSTERDOWN, MASTERDOWN, and redis-py's "TTL exhausted" after MOVED/ASK storms
    SlotNotCoveredError,  # a cluster that lost a master's slots
    TryAgainError,  # a slot being migrated: multi-key commands wait until it has moved
    OutOfMemoryError,
    NoScriptError,  # still missing after a reload: the node changed under us (restart, failover)
    OSError,
)
_PING_FAILURES: tuple[type[Exception], ...] = (*OUTAGE_ERRORS, RuntimeError)
# A cluster none of whose nodes answers (or that does not cover every slot) at start-up.
_OPEN_FAILURES: tuple[type[Exception], ...] = (*OUTAGE_ERRORS, RedisClusterException)


def cluster_url(url: str) -> str | None:
    """The plain ``redis://`` form of an explicit cluster URL; None for any other URL."""
    scheme = urlsplit(url).scheme
    return url.replace(scheme, scheme.split("+", 1)[0], 1) if scheme in CLUSTER_SCHEMES else None


def redacted(url: str) -> str:
    """``url`` without its password, for log lines and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def guarded(
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """Turn an outage inside a store method into :class:`Unavailable`."""

    async def wrapper(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(self, *args, **kwargs)
        except OUTAGE_ERRORS as exc:
            cache = getattr(self, "cache", None)
            if cache is not None:
                cache.forget()
            # The web edge logs the outage once (store_unavailable); each failed call is detail.
            _log.debug("redis store %s failed: %s: %s", method.__name__, type(exc).__name__, exc)
            raise StoreUnavailable(
                "the hub's store is temporarily unavailable", retry_after=RETRY_AFTER
            ) from exc

    functools.update_wrapper(wrapper, method)
    return wrapper


class RedisEngine:
    """Owns the client and the registered scripts; the store classes build on it."""

    sealer: Sealer

    def use_secrets(self, sealer: Sealer) -> None:
        """Seal receivers' credentials in stored records from now on (hub.keys.secrets)."""
        self.sealer = sealer

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self.sealer = Plain()  # hub.keys.secrets, once the keys are loaded
        if urlsplit(url).scheme not in URL_SCHEMES + CLUSTER_SCHEMES:
            raise ConfigError(
                f"redis URL {redacted(url)!r} must start with redis://, rediss://, unix://, "
                "redis+cluster:// or rediss+cluster://"
            )
        self.url = url
        self.cluster = False  # known after open()
        self.keys = RedisKeys(namespace)
        # Stream records and subjects read here; used only once something subscribes it to
        # the change channel (the wake-up relay, in a running hub).
        self.cache = RecordCache()
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._client: Client | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self.batcher: CommandBatcher | None = None  # on one Redis, once open
        self._closed = False

    @property
    def client(self) -> Client:
        if self._client is None:
            state = "closed" if self._closed else "not open; await open() first"
            raise RuntimeError(f"the Redis store is {state}")
        return self._client

    def _registered(self, source: str) -> AsyncScript:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.client.register_script(source)
        return script

    async def _script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one script; every key it touches is in ``keys``, all in one slot."""
        if self.batcher is None:  # a cluster: redis-py routes it by its keys
            try:
                return await self._registered(source)(keys=list(keys), args=list(args), client=self.client)
            except NoScriptError:
                # Mid-failover the promoted replica has no scripts, and redis-py's one reload
                # can reach the node that was master a moment ago. EVAL of the source runs
                # wherever the slot is now (and caches the script there).
                return await self.client.eval(source, len(keys), *keys, *args)
        return (await self._pipelined([(source, keys, args)], rerun_after_failure=False))[0]

    async def _send(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Replies to ``commands``, in order, with exceptions in place of failed ones. On one
        Redis they share a round trip with other tasks' commands (``redis_batching``)."""
        if self.batcher is not None:
            return await self.batcher.send(commands)
        if len(commands) == 1:
            try:
                return [await self.client.execute_command(*commands[0])]
            except ResponseError as exc:
                return [exc]
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))

    async def _commands(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Replies to plain commands (all in one slot when they are more than one)."""
        replies = await self._send(commands)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _evalsha(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> tuple[Any, ...]:
        """EVALSHA's arguments for one script call; every key it touches is in ``keys``,
        all in one slot (the tests' slot check hooks in here)."""
        return ("EVALSHA", self._registered(source).sha, len(keys), *keys, *args)

    async def _scripts_each(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run several one-slot scripts (say, one per stream) and return their results in
        order. Each is atomic; together they are not (they may live on different nodes)."""
        if not calls:
            return []
        if len(calls) == 1:
            return [await self._script(*calls[0])]
        client = self.client
        if isinstance(client, RedisCluster):
            return await self._each_on_cluster(calls)
        return await self._pipelined(list(calls), rerun_after_failure=False)

    async def _each_on_cluster(self, calls: Sequence[ScriptCall]) -> list[Any]:
        if len(calls) == 1:
            return [await self._script(*calls[0])]
        gate = asyncio.Semaphore(CLUSTER_SCRIPT_CONCURRENCY)

        async def one(call: ScriptCall) -> Any:
            async with gate:
                return await self._script(*call)

        return list(await asyncio.gather(*(one(call) for call in calls)))

    async def _bracketed(
        self, before: Sequence[Step], calls: Sequence[ScriptCall], after: Sequence[Step]
    ) -> list[Any]:
        """Run ``before`` (in order), then ``calls`` (independent one-slot scripts, say one
        per stream), then ``after`` (in order), each stage finished before the next starts;
        return the results of ``calls``. On one Redis that is a single pipeline, one round
        trip (Redis runs one connection's commands in order); on a cluster, where the slots
        live on different nodes, each stage waits for the one before it.

        Every step must be idempotent: the pipeline is sent again from its first step that
        found its script missing (a restarted Redis), and redis-py resends it whole when the
        connection fails mid-way."""
        if isinstance(self.client, RedisCluster):
            for step in before:
                await self._step(step)
            results = await self._each_on_cluster(calls)
            for step in after:
                await self._step(step)
            return results
        replies = await self._pipelined([*before, *calls, *after], rerun_after_failure=True)
        return replies[len(before) : len(before) + len(calls)]

    async def _step(self, step: Step) -> Any:
        if isinstance(step, Command):
            return await self.client.execute_command(*step.args)
        return await self._script(*step)

    async def _pipelined(self, steps: list[Step], *, rerun_after_failure: bool) -> list[Any]:
        """One non-transactional pipeline on one Redis. Scripts go as EVALSHA without
        redis-py's SCRIPT EXISTS check first (a second round trip on every call); a step that
        finds its script missing did not run, so the scripts are loaded and that step is
        sent again, and with ``rerun_after_failure`` every step after it too (the order of
        the steps is kept)."""
        client = self.client
        results: list[Any] = [None] * len(steps)
        todo = list(range(len(steps)))
        for attempt in range(2):
            commands = []
            for i in todo:
                step = steps[i]
                commands.append(step.args if isinstance(step, Command) else self._evalsha(*step))
            replies = await self._send(commands)
            for i, reply in zip(todo, replies, strict=True):
                results[i] = reply
            missing = [i for i in todo if isinstance(results[i], NoScriptError)]
            if not missing or attempt:
                break
            sources = {step[0] for step in (steps[i] for i in missing) if not isinstance(step, Command)}
            for source in sources:
                await client.script_load(source)
            todo = [i for i in todo if i >= missing[0]] if rerun_after_failure else missing
        for reply in results:
            if isinstance(reply, Exception):
                raise reply
        return results

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and check that Redis answers; :class:`Unavailable` (with the URL) if not."""
        if self._closed:
            raise RuntimeError("the Redis store is closed; make a new one to reconnect")
        if self._client is not None:
            return
        forced = cluster_url(self.url)
        if forced is not None:
            self._client = await self._open_cluster(forced)
            return
        try:
            single = await self._open_single()
        except ResponseError as exc:  # SELECT of a database other than 0 on a cluster node
            where = redacted(self.url)
            raise ConfigError(f"redis URL {where!r} cannot name a Redis Cluster: {exc}") from None
        try:
            clustered = await _cluster_enabled(single)
        except OUTAGE_ERRORS as exc:
            await single.aclose()
            raise Unavailable(f"cannot reach Redis at {redacted(self.url)}: {exc}") from exc
        if clustered:
            await single.aclose()
            self._client = await self._open_cluster(self.url)
        else:
            self._client = single
            self.batcher = CommandBatcher(lambda: cast(aioredis.Redis, self.client))

    def _client_options(self) -> dict[str, Any]:
        return {
            "decode_responses": True,
            "socket_connect_timeout": self._connect_timeout,
            "socket_timeout": self._command_timeout,
            "retry": Retry(
                ExponentialWithJitterBackoff(cap=BACKOFF_CAP, base=0.05),
                RETRIES,
                supported_errors=(RedisConnectionError,),
            ),
            "retry_on_error": [RedisConnectionError],
            "health_check_interval": 30,
            "client_name": "ssf-hub",
        }

    async def _open_single(self) -> aioredis.Redis:
        # Blocking: a burst of callers (a hundred push workers woken at once) waits up to
        # the command timeout for a free connection instead of failing with "Too many
        # connections", which would read as an outage.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=MAX_CONNECTIONS, timeout=self._command_timeout, **self._client_options()
        )
        client = aioredis.Redis.from_pool(pool)
        await self._check(client.ping(), client)
        return client

    async def _open_cluster(self, url: str) -> RedisCluster:
        try:
            client = RedisCluster.from_url(url, max_connections=MAX_CONNECTIONS, **self._client_options())
        except RedisClusterException as exc:  # a database number other than 0, a unix socket
            where = redacted(self.url)
            raise ConfigError(f"redis URL {where!r} cannot name a Redis Cluster: {exc}") from None
        self.cluster = True
        await self._check(client.initialize(), client)
        return client

    async def _check(self, first: Awaitable[Any], client: Client) -> None:
        """Await the client's first command; close it and raise Unavailable if Redis is out of reach."""
        try:
            await first
        except _OPEN_FAILURES as exc:
            await client.aclose()
            raise Unavailable(f"cannot reach Redis at {redacted(self.url)}: {exc}") from exc
        except BaseException:
            await client.aclose()
            raise

    async def close(self) -> None:
        """Close the connections; safe to call twice."""
        self._closed = True
        if self.batcher is not None:
            await self.batcher.close()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except _PING_FAILURES as exc:
            _log.warning("redis store ping failed: %s", exc)
            return False


async def _cluster_enabled(client: aioredis.Redis) -> bool:
    """Whether the node behind a plain URL is part of a Redis Cluster (``INFO cluster``)."""
    try:
        info = await client.info("cluster")
    except ResponseError:  # an ACL that refuses INFO: take the URL at its word
        return False
    return bool(info.get("cluster_enabled"))
