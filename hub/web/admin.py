"""Admin endpoints (scope ``ssf.admin``): inject signals, inspect and steer any stream."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.access import SCOPE_ADMIN
from hub.core.status import parse_status_update, status_object
from hub.core.streams import stream_config
from hub.errors import InvalidRequest, NotFound
from hub.rotation import rotate_signing_keys
from hub.web.context import hub_of
from hub.web.http import authorize, json_response, read_json

EMIT_FIELDS = {"event", "subject", "claims", "txn"}


async def rotate_keys_endpoint(request: Request) -> Response:
    """Rotate the SET signing key now; the old key stays published for the overlap period."""
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    await rotate_signing_keys(hub.key_storage, hub.keys, hub.settings, hub.transmitter.clock(), force=True)
    return json_response({"active_kid": hub.keys.active.kid, "jwks": hub.keys.jwks()})


async def emit_endpoint(request: Request) -> Response:
    """POST {"event", "subject", "claims"?, "txn"?} -> {"txn", "sets": [{"stream_id", "jti"}]}.

    Answers only after every SET is durably queued.
    """
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    body = await read_json(request, hub.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - EMIT_FIELDS)
    if unknown:  # a typo here would silently change what is sent
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise InvalidRequest("event is required: a short name such as session-revoked, or an event-type URI")
    if "subject" not in body:
        raise InvalidRequest("subject is required")
    result = await hub.transmitter.emit(event, body["subject"], body.get("claims"), txn=body.get("txn"))
    return json_response(result.as_dict(), 200)


async def streams_endpoint(request: Request) -> Response:
    """Every stream with its owner, status, queue depth, oldest undelivered age and push health."""
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    now = hub.transmitter.clock()
    out = []
    for stream in await hub.store.list_streams():
        config = stream_config(stream, hub.policy.supported_events)
        stats = await hub.store.queue_stats(stream.stream_id)
        health = await hub.store.get_health(stream.stream_id)
        config.pop("events_supported")  # the same for every stream; noise here
        config["delivery"].pop("authorization_header", None)  # the receiver's secret
        config.update(
            owner=stream.owner,
            status=stream.status.value,
            status_reason=stream.status_reason,
            subject_mode=stream.subject_mode.value,
            queued=stats.depth,
            oldest_undelivered_age=None
            if stats.oldest_queued_at is None
            else round(now - stats.oldest_queued_at, 3),
            last_success_at=health.last_success_at,
            last_error=health.last_error,
            last_error_at=health.last_error_at,
            credentials_failing=health.auth_failing,
            failing_since=health.failing_since,
        )
        out.append(config)
    return json_response(out)


async def trace_endpoint(request: Request) -> Response:
    """Where a SET went: by its ``jti``, or every SET of a ``txn``; each attempt and the final state."""
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    ident = request.path_params["ident"]
    traces = await hub.store.trace(ident)
    if not traces:
        raise NotFound(
            f"no SET with jti or txn {ident} (finished SETs are kept {hub.settings.retention_days:g} days)"
        )
    return json_response(
        {
            "id": ident,
            "sets": [
                {
                    "stream_id": t.stream_id,
                    "jti": t.jti,
                    "txn": t.txn,
                    "event_type": t.event_type,
                    "state": t.state.value,
                    "queued_at": t.queued_at,
                    "done_at": t.done_at,
                    "last_error": t.last_error,
                    "attempts": [
                        {
                            "at": a.at,
                            "outcome": a.outcome,
                            "status": a.status,
                            "error": a.error,
                            "latency_ms": a.latency_ms,
                        }
                        for a in t.attempts
                    ],
                }
                for t in traces
            ],
        }
    )


async def stream_status_endpoint(request: Request) -> Response:
    """An operator changes a stream's status; the hub announces it (R-STATUS-7)."""
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    body = await read_json(request, hub.settings.max_body_bytes)
    if isinstance(body, dict):
        body = {**body, "stream_id": request.path_params["stream_id"]}
    update = parse_status_update(body)
    stream = await hub.store.get_stream(update.stream_id)
    if stream is None:
        raise NotFound(f"no stream {update.stream_id}")
    stream = await hub.streams.set_status(stream, update, by_transmitter=True)
    return json_response(status_object(stream))


async def stream_errors_endpoint(request: Request) -> Response:
    """The setErrs receivers reported for a stream, newest first, and its audit trail."""
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    stream_id = request.path_params["stream_id"]
    if await hub.store.get_stream(stream_id) is None:
        raise NotFound(f"no stream {stream_id}")
    errors = await hub.store.list_set_errors(stream_id)
    audit = [
        {"at": r.at, "kind": r.kind, "detail": r.detail}
        for r in await hub.store.list_audit(stream_id, limit=100)
    ]
    return json_response({"stream_id": stream_id, "set_errors": errors, "audit": audit})
