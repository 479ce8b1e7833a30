"""The plumbing under the Redis store: one asyncio client, its scripts, and error mapping.

A Redis that does not answer surfaces as :class:`~hub.errors.Unavailable` (503 with
``Retry-After``), never as a redis-py exception: the client retries a failed command a
few times with capped, jittered backoff and then gives up quickly, so a request fails
fast during an outage and the next one reconnects.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from hub.errors import ConfigError, Unavailable
from hub.store.redis_keys import DEFAULT_NAMESPACE, RedisKeys

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

# Errors that mean "Redis cannot serve right now", as opposed to a bug in a command.
OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,  # a replica promoted mid-failover
    MasterDownError,
    ClusterDownError,
    TryAgainError,
    OutOfMemoryError,
    OSError,
)
_PING_FAILURES: tuple[type[Exception], ...] = (*OUTAGE_ERRORS, RuntimeError)


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
            _log.warning("redis store %s failed: %s: %s", method.__name__, type(exc).__name__, exc)
            raise Unavailable("the hub's store is temporarily unavailable", retry_after=RETRY_AFTER) from exc

    functools.update_wrapper(wrapper, method)
    return wrapper


class RedisEngine:
    """Owns the client and the registered scripts; the store classes build on it."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        if urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
            raise ConfigError(f"redis URL {redacted(url)!r} must start with redis://, rediss:// or unix://")
        self.url = url
        self.keys = RedisKeys(namespace)
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._closed = False

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            state = "closed" if self._closed else "not open; await open() first"
            raise RuntimeError(f"the Redis store is {state}")
        return self._client

    async def _script(self, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self.client.register_script(source)
        return await script(keys=list(keys), args=list(args), client=self.client)

    async def _run(self, source: str, *args: object) -> Any:
        """Run a script that builds its own key names from the prefix (``ARGV[1]``)."""
        return await self._script(source, (), (self.keys.prefix, *args))

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and check that Redis answers; :class:`Unavailable` (with the URL) if not."""
        if self._closed:
            raise RuntimeError("the Redis store is closed; make a new one to reconnect")
        if self._client is not None:
            return
        # Blocking: a burst of callers (a hundred push workers woken at once) waits up to
        # the command timeout for a free connection instead of failing with "Too many
        # connections", which would read as an outage.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=MAX_CONNECTIONS,
            timeout=self._command_timeout,
            decode_responses=True,
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._command_timeout,
            retry=Retry(
                ExponentialWithJitterBackoff(cap=BACKOFF_CAP, base=0.05),
                RETRIES,
                supported_errors=(RedisConnectionError,),
            ),
            retry_on_error=[RedisConnectionError],
            health_check_interval=30,
            client_name="ssf-hub",
        )
        client = aioredis.Redis.from_pool(pool)
        try:
            await client.ping()
        except OUTAGE_ERRORS as exc:
            await client.aclose()
            raise Unavailable(f"cannot reach Redis at {redacted(self.url)}: {exc}") from exc
        except BaseException:
            await client.aclose()
            raise
        self._client = client

    async def close(self) -> None:
        """Close the connections; safe to call twice."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except _PING_FAILURES as exc:
            _log.warning("redis store ping failed: %s", exc)
            return False
