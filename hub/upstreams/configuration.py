"""Adding and removing upstreams: what the admin API and ``ssf-hub upstreams`` share."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from hub.core.upstream_compat import revocation_events
from hub.core.upstreams import UPSTREAM_ID, ClientCredentials, Upstream, parse_upstream
from hub.errors import Conflict, InvalidRequest, NotFound
from hub.store.base import Store
from hub.upstreams.credentials import load_client_key

MAX_NAME_TRIES = 100


def default_events() -> tuple[str, ...]:
    """What an upstream is asked for unless the operator says otherwise: the revocation-relevant
    CAEP and RISC events (:data:`~hub.core.upstream_compat.REVOCATION_EVENT_NAMES`); the link
    keeps those the transmitter lists in ``events_supported``."""
    return revocation_events()


async def add_upstream(store: Store, body: Any, *, now: float) -> Upstream:
    """Validate and store a new upstream; the key file must be readable now, not at first use."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    upstream = parse_upstream(body, upstream_id="upstream", default_events=default_events(), now=now)
    if isinstance(upstream.token_source, ClientCredentials):
        await asyncio.to_thread(load_client_key, upstream.token_source.private_key_file)
    if "upstream_id" in body:
        if not await store.add_upstream(upstream):
            raise Conflict(f"an upstream named {upstream.upstream_id} exists already")
        return upstream
    base = _name_from(upstream.config_url)
    for n in range(1, MAX_NAME_TRIES + 1):
        named = replace(upstream, upstream_id=base if n == 1 else f"{base}-{n}")
        if await store.add_upstream(named):
            return named
    raise Conflict(f"too many upstreams named after {base}; give upstream_id")


async def remove_upstream(store: Store, upstream_id: str) -> None:
    if not await store.remove_upstream(upstream_id):
        raise NotFound(f"no upstream {upstream_id}")


def _name_from(config_url: str) -> str:
    host = (urlsplit(config_url).hostname or "upstream").strip(".")
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in host)[:56]
    return name if UPSTREAM_ID.match(name) else "upstream"
