"""The Starlette application: routes, error handlers, and the lifespan that wires the hub."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Route

from hub.access import ExternalIssuer, TokenValidator
from hub.client_limits import ClientLimits
from hub.config import Settings, push_schedule
from hub.core.addresses import AddressPolicy
from hub.core.discovery import (
    ADD_SUBJECT_PATH,
    ADMIN_PATH,
    CONFIGURATION_PATH,
    INGEST_PATH,
    JWKS_PATH,
    POLL_PATH,
    REMOVE_SUBJECT_PATH,
    STATUS_PATH,
    VERIFICATION_PATH,
    issuer_path,
    well_known_path,
)
from hub.core.events import CATALOGUE
from hub.core.model import POLL_METHOD, PUSH_METHOD, SubjectMode
from hub.core.streams import StreamPolicy
from hub.errors import HubError
from hub.ingest import IngestPipeline, IssuerRegistry
from hub.ingest.verifiers import IssuerVerifiers
from hub.jobs import start_jobs
from hub.key_storage import key_storage_for
from hub.management import StreamManagement
from hub.polling import PollDelivery
from hub.push.dispatcher import PushDispatcher, PushPolicy
from hub.push.egress import EndpointGuard, Resolver, system_resolver
from hub.push.sender import PushSender
from hub.signing import SetSigner, auto_processes
from hub.store import Store, open_store
from hub.store.outages import REDIS_OUTAGES
from hub.transmitter import Transmitter
from hub.upstreams.runtime import start_upstreams
from hub.wakeup import QueueSignal
from hub.wakeup_redis import RedisWakeupRelay
from hub.web import admin, ingest, issuers, meta, ssf, upstreams
from hub.web.context import HubContext
from hub.web.http import handle_http_exception, handle_hub_error, handle_store_outage, handle_unexpected

log = logging.getLogger("hub")


def routes(settings: Settings) -> list[BaseRoute]:
    prefix = issuer_path(settings.issuer_url)
    # The well-known document follows the path-insertion rule (R-DISC-1); the rest of the
    # API lives under the issuer's path so a hub can sit behind a path-routing proxy.
    return [
        Route(well_known_path(settings.issuer_url), meta.configuration_endpoint, methods=["GET"]),
        Route("/healthz", meta.healthz_endpoint, methods=["GET"]),
        Route(prefix + JWKS_PATH, meta.jwks_endpoint, methods=["GET"]),
        Route(
            prefix + CONFIGURATION_PATH,
            ssf.stream_endpoint,
            methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        ),
        Route(prefix + STATUS_PATH, ssf.status_endpoint, methods=["GET", "POST"]),
        Route(prefix + ADD_SUBJECT_PATH, ssf.add_subject_endpoint, methods=["POST"]),
        Route(prefix + REMOVE_SUBJECT_PATH, ssf.remove_subject_endpoint, methods=["POST"]),
        Route(prefix + VERIFICATION_PATH, ssf.verify_endpoint, methods=["POST"]),
        Route(prefix + POLL_PATH + "/{stream_id}", ssf.poll_endpoint, methods=["POST"]),
        Route(prefix + ADMIN_PATH + "/events", admin.emit_endpoint, methods=["POST"]),
        Route(prefix + ADMIN_PATH + "/streams", admin.streams_endpoint, methods=["GET"]),
        Route(
            prefix + ADMIN_PATH + "/streams/{stream_id}/status",
            admin.stream_status_endpoint,
            methods=["POST"],
        ),
        Route(
            prefix + ADMIN_PATH + "/streams/{stream_id}/errors", admin.stream_errors_endpoint, methods=["GET"]
        ),
        Route(prefix + ADMIN_PATH + "/keys/rotate", admin.rotate_keys_endpoint, methods=["POST"]),
        Route(prefix + ADMIN_PATH + "/trace/{ident}", admin.trace_endpoint, methods=["GET"]),
        Route(prefix + INGEST_PATH, ingest.ingest_endpoint, methods=["POST"]),
        Route(prefix + ADMIN_PATH + "/issuers", issuers.issuers_endpoint, methods=["GET", "POST"]),
        Route(
            prefix + ADMIN_PATH + "/issuers/{iss:path}", issuers.issuer_endpoint, methods=["GET", "DELETE"]
        ),
        Route(prefix + ADMIN_PATH + "/upstreams", upstreams.upstreams_endpoint, methods=["GET", "POST"]),
        Route(
            prefix + ADMIN_PATH + "/upstreams/{upstream_id}",
            upstreams.upstream_endpoint,
            methods=["GET", "DELETE"],
        ),
    ]


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    http_client: httpx.AsyncClient | None = None,
    push_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver = system_resolver,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Build the hub. The store, HTTP clients and DNS resolver may be injected by tests."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            ctx = await _build_context(settings, store, http_client, push_transport, resolver, clock, stack)
            app.state.hub = ctx
            await ctx.push.start()
            stack.push_async_callback(ctx.push.stop)
            scheduler = start_jobs(ctx, clock)
            stack.callback(scheduler.shutdown, wait=False)
            ctx.upstreams = await start_upstreams(ctx, stack, clock=clock)
            log.info("ssf-hub ready: issuer %s, store %s", settings.issuer_url, settings.store)
            yield

    app = Starlette(
        routes=routes(settings),
        lifespan=lifespan,
        exception_handlers={
            HubError: handle_hub_error,
            HTTPException: handle_http_exception,
            # A redis-py error that got past the store still means "down", never a 500.
            **dict.fromkeys(REDIS_OUTAGES, handle_store_outage),
            Exception: handle_unexpected,
        },
    )
    return app


async def _build_context(
    settings: Settings,
    store: Store | None,
    http_client: httpx.AsyncClient | None,
    push_transport: httpx.AsyncBaseTransport | None,
    resolver: Resolver,
    clock: Callable[[], float],
    stack: contextlib.AsyncExitStack,
) -> HubContext:
    data_dir = settings.data_dir
    if store is None:
        store = open_store(
            settings.store,
            data_dir=data_dir,
            redis_url=settings.redis_url,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
    await store.open()
    stack.push_async_callback(store.close)
    if http_client is None:
        http_client = httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
        stack.push_async_callback(http_client.aclose)

    # Key files in the data dir on SQLite; documents in the store, shared by replicas, on Redis.
    key_storage = key_storage_for(store, data_dir)
    ring = await key_storage.load_ring(settings.signing_alg, clock())
    token_key = await key_storage.token_key()
    tokens = TokenValidator(
        token_key,
        [ExternalIssuer(i.issuer, i.jwks_uri, i.audience or None) for i in settings.external_issuers],
        leeway=settings.token_leeway,
        http_client=http_client,
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
    signer = SetSigner(ring, processes=auto_processes() if processes is None else processes)
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
    polls = PollDelivery(store, signal, long_poll_seconds=settings.long_poll_seconds)
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
            lease_ttl=settings.push_lease_seconds,
        ),
        pause=streams.pause_failing,
        clock=clock,
    )
    signal.subscribe(push.wake)
    if settings.store == "redis" and settings.redis_url:
        # Replicas share the store, so a SET queued on one must wake polls and push on all.
        relay = RedisWakeupRelay.from_url(settings.redis_url, signal)
        await relay.start()
        stack.push_async_callback(relay.stop)
    registry = IssuerRegistry(store)
    pipeline = IngestPipeline(
        store,
        registry,
        IssuerVerifiers(
            audience=issuer,
            http=http_client,
            max_future_skew=settings.ingest_clock_skew,
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
            connector = aiohttp.TCPConnector(limit=settings.push_max_in_flight, keepalive_timeout=30.0)
            # Receivers' cookies mean nothing to push; a real jar costs a parse per response.
            return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

        return AiohttpTransport(client=session)
    limits = httpx.Limits(
        max_connections=settings.push_max_in_flight,
        max_keepalive_connections=settings.push_max_in_flight,
        keepalive_expiry=30.0,
    )
    return httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
