"""Wiring the upstream supervisor into a running hub (called from the app's lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import httpx
from joserfc.jwk import Key

from hub.auth.tokens import SCOPE_INGEST, mint_local_token
from hub.config import Settings
from hub.core.discovery import INGEST_PATH
from hub.core.issuers import ALLOWED_ALGORITHMS, TrustedIssuer
from hub.core.upstreams import Upstream
from hub.keys.ring import load_or_create_token_key
from hub.runtime.context import HubContext
from hub.runtime.trust import outbound_tls
from hub.store.base import Store
from hub.upstreams.feed import IngestSink
from hub.upstreams.link import LinkPolicy, UpstreamLink
from hub.upstreams.supervisor import UpstreamSupervisor

UPSTREAM_HTTP_TIMEOUT = 10.0  # per request; long polls set their own
LEASE_SECONDS = 30.0  # a stopped replica's upstreams move to another one after this


async def start_upstreams(
    ctx: HubContext, stack: contextlib.AsyncExitStack, *, clock: Callable[[], float]
) -> UpstreamSupervisor:
    """Start the supervisor for ``ctx``'s hub; ``stack`` stops it (and closes its client) on exit."""
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(UPSTREAM_HTTP_TIMEOUT),
        follow_redirects=False,
        verify=outbound_tls(ctx.settings),
    )
    stack.push_async_callback(http.aclose)
    token_key = await asyncio.to_thread(load_or_create_token_key, ctx.settings.data_dir)
    supervisor = build_supervisor(
        ctx.settings, store=ctx.store, http=http, token_key=token_key, sink=ctx.ingest.accept, clock=clock
    )
    ctx.ingest.on_control_event(supervisor.control_event)
    ctx.ingest.on_accepted(lambda result: supervisor.event_accepted(result.iss))
    await supervisor.start()
    stack.push_async_callback(supervisor.stop)
    return supervisor


def build_supervisor(
    settings: Settings,
    *,
    store: Store,
    http: httpx.AsyncClient,
    token_key: Key,
    sink: IngestSink,
    lease_ttl: float = LEASE_SECONDS,
    clock: Callable[[], float] = time.time,
) -> UpstreamSupervisor:
    policy = LinkPolicy(
        ingest_url=settings.issuer_url + INGEST_PATH,  # the issuer URL keeps the proxy's path
        audience=settings.issuer_url,
        # Development against a transmitter on this machine or a private network over http.
        allow_http=True if settings.allow_private_endpoints else None,
        check_interval=settings.upstream_check_interval,
        verify_timeout=settings.upstream_verify_timeout,
        ingest_token_ttl=int(settings.upstream_push_token_ttl),
    )

    async def trust_issuer(iss: str, jwks_uri: str) -> None:
        # An issuer the operator registered keeps its limits; only a new one is added.
        if await store.get_issuer(iss) is None:
            await store.put_issuer(
                TrustedIssuer(iss=iss, jwks_uri=jwks_uri, algorithms=ALLOWED_ALGORITHMS, added_at=clock())
            )

    def mint_ingest_token(sub: str, ttl: int) -> str:
        return mint_local_token(token_key, sub=sub, scope=SCOPE_INGEST, ttl=ttl, now=clock())

    def new_link(upstream: Upstream) -> UpstreamLink:
        return UpstreamLink(
            upstream,
            store=store,
            http=http,
            policy=policy,
            sink=sink,
            trust_issuer=trust_issuer,
            mint_ingest_token=mint_ingest_token,
            clock=clock,
        )

    return UpstreamSupervisor(
        store, new_link, reload_interval=settings.upstream_reload_interval, lease_ttl=lease_ttl, clock=clock
    )
