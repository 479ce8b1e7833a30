"""Wiring one hub process: open the store, load the keys, build every part, start the workers.

:func:`start_hub` is what the web app's lifespan calls; everything it starts is stopped by
the exit stack it is given, in reverse order.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import httpx

from hub.auth.limits import ClientLimits
from hub.auth.tokens import ExternalIssuer, TokenValidator
from hub.config import Settings, push_schedule
from hub.core.addresses import AddressPolicy
from hub.core.discovery import (
    POLL_PATH,
)
from hub.core.model import POLL_METHOD, PUSH_METHOD, SubjectMode
from hub.core.streams import StreamPolicy
from hub.delivery.polling import PollDelivery
from hub.delivery.push.dispatcher import PushDispatcher, PushPolicy
from hub.delivery.push.egress import EndpointGuard, Resolver, system_resolver
from hub.delivery.push.lanes import PushOrder
from hub.delivery.push.sender import PushSender
from hub.delivery.wakeup import QueueSignal
from hub.delivery.wakeup_local import ProcessWakeupRelay
from hub.delivery.wakeup_redis import RedisWakeupRelay
from hub.ingest import IngestPipeline, IssuerRegistry
from hub.ingest.verifiers import IssuerVerifiers
from hub.keys.signing import SetSigner, auto_processes
from hub.keys.storage import key_storage_for
from hub.runtime.context import HubContext, ProcessSeat
from hub.runtime.jobs import start_jobs
from hub.runtime.trust import outbound_tls
from hub.runtime.upstreams import start_upstreams
from hub.store import RedisStore, SQLiteStore, Store, open_store
from hub.transmitter.issuing import Transmitter
from hub.transmitter.management import StreamManagement
from receivers.events import CATALOGUE


async def start_hub(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    *,
    store: Store | None = None,
    http_client: httpx.AsyncClient | None = None,
    push_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver = system_resolver,
    clock: Callable[[], float] = time.time,
    seat: ProcessSeat | None = None,
) -> HubContext:
    """Build the hub and start push delivery, the timed jobs and the upstream links.

    ``seat``: this is one of several hub processes of ``serve --processes``."""
    ctx = await build_context(settings, store, http_client, push_transport, resolver, clock, stack, seat)
    await ctx.push.start()
    stack.push_async_callback(ctx.push.stop)
    scheduler = start_jobs(ctx, clock)
    stack.callback(scheduler.shutdown, wait=False)
    ctx.upstreams = await start_upstreams(ctx, stack, clock=clock)
    return ctx


async def build_context(
    settings: Settings,
    store: Store | None,
    http_client: httpx.AsyncClient | None,
    push_transport: httpx.AsyncBaseTransport | None,
    resolver: Resolver,
    clock: Callable[[], float],
    stack: contextlib.AsyncExitStack,
    seat: ProcessSeat | None = None,
) -> HubContext:
    data_dir = settings.data_dir
    siblings = seat is not None and seat.has_siblings
    if store is None:
        store = open_store(
            settings.store,
            data_dir=data_dir,
            redis_url=settings.redis_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sibling_processes=siblings,
        )
    await store.open()
    stack.push_async_callback(store.close)
    if http_client is None:
        http_client = httpx.AsyncClient(
            timeout=httpx.Timeout(5.0), follow_redirects=False, verify=outbound_tls(settings)
        )
        stack.push_async_callback(http_client.aclose)

    # Key files in the data dir on SQLite; documents in the store, shared by replicas, on Redis.
    key_storage = key_storage_for(store, data_dir, sibling_processes=siblings)
    store.use_secrets(await key_storage.secret_box())  # push credentials sealed at rest
    ring = await key_storage.load_ring(settings.signing_alg, clock())
    token_key = await key_storage.token_key()
    tokens = TokenValidator(
        token_key,
        [ExternalIssuer(i.issuer, i.jwks_uri, i.audience or None) for i in settings.external_issuers],
        leeway=settings.token_leeway,
        http_client=http_client,
        max_token_bytes=settings.max_access_token_bytes,
        clock=clock,
    )
    signal = QueueSignal()
    policy = StreamPolicy(
        supported_events=CATALOGUE.deliverable_uris(),
        delivery_methods=(POLL_METHOD, PUSH_METHOD),
        min_verification_interval=settings.min_verification_interval,
        inactivity_timeout=settings.inactivity_timeout,
    )
    issuer = settings.issuer_url
    guard = EndpointGuard(
        AddressPolicy.from_strings(settings.allow_private_endpoints, settings.push_allow_cidrs), resolver
    )
    if push_transport is None:
        push_transport = push_transport_for(settings)
        stack.push_async_callback(push_transport.aclose)
    processes = settings.signing_processes
    if processes is None:
        processes = 0 if siblings else auto_processes()  # sibling hub processes use the cores
    signer = SetSigner(ring, processes=processes)
    await signer.start()
    stack.push_async_callback(signer.close)
    transmitter = Transmitter(store, ring, signal, clock=clock, signer=signer)
    streams = StreamManagement(
        store,
        transmitter,
        issuer=issuer,
        policy=policy,
        poll_url=lambda sid: f"{issuer}{POLL_PATH}/{sid}",
        default_subjects=SubjectMode(settings.default_subjects),
        all_subjects_receivers=frozenset(settings.all_subjects_receivers),
        endpoint_guard=guard,
        clock=clock,
    )
    polls = PollDelivery(
        store, signal, long_poll_seconds=settings.long_poll_seconds, refresh=transmitter.resign_retired
    )
    push = PushDispatcher(
        store,
        PushSender(push_transport, guard, timeout=settings.push_timeout),
        policy=PushPolicy(
            schedule=push_schedule(settings),
            pause_after=settings.push_pause_after,
            endpoint_concurrency=settings.push_endpoint_concurrency,
            endpoint_rate=settings.push_endpoint_rate,
            endpoint_burst=max(settings.push_endpoint_rate, 1.0),
            max_in_flight=settings.push_max_in_flight,
            stream_in_flight=settings.push_stream_in_flight,
            order=PushOrder(settings.push_order),
            lease_ttl=settings.push_lease_seconds,
        ),
        pause=streams.pause_failing,
        clock=clock,
        refresh=transmitter.resign_retired,
    )
    signal.subscribe(push.wake)
    if settings.store == "redis" and settings.redis_url:
        # Replicas share the store, so a SET queued on one must wake polls and push on all.
        # It also carries the Redis store's change channel, which lets the store keep stream
        # records and subjects in this process (hub.store.redis_cache).
        if isinstance(store, RedisStore):
            relay = RedisWakeupRelay.from_url(
                settings.redis_url, signal, records=store.cache, changes_channel=store.keys.changes_channel
            )
        else:
            relay = RedisWakeupRelay.from_url(settings.redis_url, signal)
        await relay.start()
        stack.push_async_callback(relay.stop)
    if siblings and isinstance(store, SQLiteStore):
        assert seat is not None
        # The processes of one serve share the file: a SET queued in one must wake polls and
        # push in the others, and a stream written in one must leave the others' caches.
        local = ProcessWakeupRelay(
            data_dir, seat.index, seat.count, signal, forget_stream=store.forget_stream
        )
        await local.start()
        stack.push_async_callback(local.stop)
        store.stream_changed = local.send_change
    registry = IssuerRegistry(store)
    pipeline = IngestPipeline(
        store,
        registry,
        IssuerVerifiers(
            audience=issuer,
            http=http_client,
            max_future_skew=settings.ingest_clock_skew,
            # A SET older than the dedup window could be forgotten and accepted again (R-SEC-3).
            max_age=settings.ingest_dedup_days * 86400,
            min_refetch_interval=settings.ingest_jwks_refetch_seconds,
            clock=clock,
        ),
        transmitter,
        dedup_seconds=settings.ingest_dedup_days * 86400,
        clock=clock,
    )
    return HubContext(
        settings,
        store,
        ring,
        tokens,
        transmitter,
        streams,
        polls,
        policy,
        push,
        issuers=registry,
        ingest=pipeline,
        key_storage=key_storage,
        subject_limits=ClientLimits(
            rate=settings.subject_changes_per_second, burst=settings.subject_changes_burst, clock=clock
        ),
    )


def push_transport_for(settings: Settings) -> httpx.AsyncBaseTransport:
    """The outbound transport for push: httpx's own or aiohttp's under the httpx transport API
    (``push_transport``); aiohttp measured several times faster (tests/bench/README.md)."""
    if settings.push_transport == "aiohttp":
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        def session() -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(
                limit=settings.push_max_in_flight, keepalive_timeout=30.0, ssl=outbound_tls(settings)
            )
            # Receivers' cookies mean nothing to push; a real jar costs a parse per response.
            return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

        return AiohttpTransport(client=session)
    limits = httpx.Limits(
        max_connections=settings.push_max_in_flight,
        max_keepalive_connections=settings.push_max_in_flight,
        keepalive_expiry=30.0,
    )
    return httpx.AsyncHTTPTransport(limits=limits, trust_env=False, verify=outbound_tls(settings))
