"""Where the hub keeps streams, subjects and queued SETs: one ``Store`` protocol, two backends."""

from __future__ import annotations

from pathlib import Path

from hub.errors import ConfigError
from hub.store.base import Store
from hub.store.redis import RedisStore
from hub.store.sqlite import SQLiteStore

__all__ = ["RedisStore", "SQLiteStore", "Store", "open_store"]

STORE_KINDS = ("sqlite", "redis")


def open_store(
    kind: str,
    *,
    data_dir: Path,
    redis_url: str | None = None,
    sqlite_synchronous: str = "FULL",
    serving: bool = True,
    sibling_processes: bool = False,
) -> Store:
    """The configured store, not yet opened (the caller awaits ``open()`` at start-up).

    ``serving=False`` is for CLI commands that open the store beside a running hub;
    ``sibling_processes`` for each process of ``serve --processes`` on one SQLite file."""
    if kind == "sqlite":
        path = data_dir / "hub.sqlite3"
        return SQLiteStore(
            path, synchronous=sqlite_synchronous, serving=serving, sibling_processes=sibling_processes
        )
    if kind == "redis":
        if not redis_url:
            raise ConfigError("the redis store needs a redis URL (--redis-url redis://HOST:PORT/DB)")
        return RedisStore(redis_url)
    raise ConfigError(f"unknown store kind {kind!r}; choose one of: {', '.join(STORE_KINDS)}")
