"""The Starlette application: routes, error handlers, and the lifespan that wires the hub."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Route

from hub.config import Settings
from hub.console import console_routes
from hub.core.discovery import (
    ADD_SUBJECT_PATH,
    ADMIN_PATH,
    CONFIGURATION_PATH,
    INGEST_PATH,
    JWKS_PATH,
    POLL_PATH,
    RECEIPTS_PATH,
    REMOVE_SUBJECT_PATH,
    STATUS_PATH,
    VERIFICATION_PATH,
    issuer_path,
    well_known_path,
)
from hub.delivery.push.egress import Resolver, system_resolver
from hub.errors import HubError
from hub.runtime.assembly import start_hub
from hub.runtime.context import ProcessSeat
from hub.store import Store
from hub.store.outages import REDIS_OUTAGES
from hub.web import admin, ingest, issuers, meta, metrics, receipts, ssf, upstreams
from hub.web.guards import RequestGuard
from hub.web.http import (
    handle_client_gone,
    handle_http_exception,
    handle_hub_error,
    handle_nesting,
    handle_store_outage,
    handle_unexpected,
)

log = logging.getLogger("hub")


def routes(settings: Settings) -> list[BaseRoute]:
    prefix = issuer_path(settings.issuer_url)
    # The well-known document follows the path-insertion rule (R-DISC-1); the rest of the
    # API lives under the issuer's path so a hub can sit behind a path-routing proxy.
    return [
        Route(well_known_path(settings.issuer_url), meta.configuration_endpoint, methods=["GET"]),
        Route("/healthz", meta.healthz_endpoint, methods=["GET"]),
        Route("/metrics", metrics.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", meta.openapi_endpoint, methods=["GET"]),
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
        Route(prefix + RECEIPTS_PATH, receipts.receipts_endpoint, methods=["POST"]),
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
        Route(prefix + ADMIN_PATH + "/audit", admin.audit_endpoint, methods=["GET"]),
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
        *console_routes(),
    ]


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    http_client: httpx.AsyncClient | None = None,
    push_transport: httpx.AsyncBaseTransport | None = None,
    resolver: Resolver = system_resolver,
    clock: Callable[[], float] = time.time,
    seat: ProcessSeat | None = None,
) -> Starlette:
    """Build the hub. The store, HTTP clients and DNS resolver may be injected by tests;
    ``seat`` says which process of ``serve --processes`` this is."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            app.state.hub = await start_hub(
                settings,
                stack,
                store=store,
                http_client=http_client,
                push_transport=push_transport,
                resolver=resolver,
                clock=clock,
                seat=seat,
            )
            log.info("ssf-hub ready: issuer %s, store %s", settings.issuer_url, settings.store)
            yield

    app = Starlette(
        routes=routes(settings),
        lifespan=lifespan,
        middleware=[Middleware(RequestGuard)],
        exception_handlers={
            HubError: handle_hub_error,
            # Every decoder bounds nesting (hub.core.inputs); one that slips through is still
            # hostile input, never a 500.
            RecursionError: handle_nesting,
            ClientDisconnect: handle_client_gone,
            HTTPException: handle_http_exception,
            # A redis-py error that got past the store still means "down", never a 500.
            **dict.fromkeys(REDIS_OUTAGES, handle_store_outage),
            Exception: handle_unexpected,
        },
    )
    return app
