"""Running one piece of work against the configured store from the command line.

``ssf-hub issuers`` and ``ssf-hub upstreams`` change the store directly, often beside a
running hub that picks the change up; they open the store as a non-serving client.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from hub.config import load_settings
from hub.keys.storage import key_storage_for
from hub.store import Store, open_store

T = TypeVar("T")


def with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store that ``args`` (``--config``, ``--data-dir``, ``--store``, ``--redis-url``)
    name, run ``work`` on it and close it again."""
    overrides = {"data_dir": args.data_dir, "store": args.store, "redis_url": args.redis_url}
    settings = load_settings(config_file=args.config, overrides=overrides)

    async def run() -> T:
        store = open_store(
            settings.store,
            data_dir=Path(settings.data_dir),
            redis_url=settings.redis_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            serving=False,  # leave a running hub's leases alone
        )
        await store.open()
        try:
            # The same sealing as the running hub: an upstream's token is stored sealed.
            store.use_secrets(await key_storage_for(store, Path(settings.data_dir)).secret_box())
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())
