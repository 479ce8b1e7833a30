"""Admin endpoints (scope ``ssf.admin``): inject signals, inspect and steer any stream."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.auth.tokens import SCOPE_ADMIN
from hub.core.audit import audit_query, audit_view
from hub.core.remediation import receipt_view
from hub.core.status import parse_status_update, status_object
from hub.errors import InvalidRequest, NotFound
from hub.keys.rotation import rotate_signing_keys
from hub.runtime.listing import stream_rows
from hub.transmitter.issuing import EmitRequest
from hub.web.http import audit, authorize, hub_of, json_response, read_json

EMIT_FIELDS = {"event", "subject", "claims", "txn"}
MAX_EMIT_BATCH = 1000  # events per batch emit (the body limit, max_body_bytes, applies too)


async def rotate_keys_endpoint(request: Request) -> Response:
    """Rotate the SET signing key now; the old key stays published for the overlap period."""
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_ADMIN)
    body = await read_json(request, hub.settings.max_body_bytes, required=False)
    retire_now = body.get("retire_now", False) if isinstance(body, dict) else None
    if not isinstance(retire_now, bool):
        raise InvalidRequest('the body is {"retire_now": true|false} (or empty)')
    previous = hub.keys.active.kid
    now = hub.transmitter.clock()
    await rotate_signing_keys(hub.key_storage, hub.keys, hub.settings, now, force=True, retire_now=retire_now)
    kid = hub.keys.active.kid
    await audit(hub, "key_rotated", principal, kid=kid, previous_kid=previous, retired_now=retire_now)
    return json_response({"active_kid": hub.keys.active.kid, "jwks": hub.keys.jwks()})


async def audit_endpoint(request: Request) -> Response:
    """GET ?since=&txn=&stream_id=&actor=&limit= -> {"records": [...]}, newest first."""
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    query = audit_query(request.query_params)
    records = await hub.store.list_audit(
        query.stream_id, query.limit, since=query.since, txn=query.txn, actor=query.actor
    )
    return json_response({"records": [audit_view(r) for r in records]})


async def emit_endpoint(request: Request) -> Response:
    """POST {"event", "subject", "claims"?, "txn"?} -> {"txn", "sets": [{"stream_id", "jti"}]};
    or a batch, {"events": [{...}, ...]} -> {"events": [{"txn", "sets", ...}, ...]}, one result
    (and one txn) per event in order.

    Answers only after every SET is durably queued. A batch is checked as a whole first: one bad
    element refuses it with 400 naming its index, and nothing is queued.
    """
    hub = hub_of(request)
    principal = await authorize(request, SCOPE_ADMIN)
    body = await read_json(request, hub.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if "events" not in body:
        one = emit_request(body)
        result = await hub.transmitter.emit(
            one.event, one.subject, one.claims, txn=one.txn, actor=principal.sub
        )
        return json_response(result.as_dict(), 200)
    if set(body) != {"events"}:
        raise InvalidRequest('a batch is {"events": [...]} with no other field')
    events = body["events"]
    if not isinstance(events, list) or not events or len(events) > MAX_EMIT_BATCH:
        raise InvalidRequest(f"events must be a list of 1 to {MAX_EMIT_BATCH} event objects")
    requests = []
    for n, element in enumerate(events):
        try:
            requests.append(emit_request(element))
        except InvalidRequest as exc:
            raise InvalidRequest(f"events[{n}]: {exc.description}") from None
    results = await hub.transmitter.emit_many(requests, actor=principal.sub)
    return json_response({"events": [r.as_dict() for r in results]}, 200)


def emit_request(body: object) -> EmitRequest:
    """One event object of an emit, its fields checked (the transmitter checks their values)."""
    if not isinstance(body, dict):
        raise InvalidRequest("an event must be a JSON object")
    unknown = sorted(set(body) - EMIT_FIELDS)
    if unknown:  # a typo here would silently change what is sent
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    event = body.get("event")
    if not isinstance(event, str) or not event:
        raise InvalidRequest("event is required: a short name such as session-revoked, or an event-type URI")
    if "subject" not in body:
        raise InvalidRequest("subject is required")
    return EmitRequest(event, body["subject"], body.get("claims"), body.get("txn"))


async def streams_endpoint(request: Request) -> Response:
    """Every stream with its owner, status, queue depth, oldest undelivered age and push health."""
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    return json_response(await stream_rows(hub))


async def trace_endpoint(request: Request) -> Response:
    """Where a SET went: by its ``jti``, or every SET of a ``txn``; each attempt and the final state."""
    hub = hub_of(request)
    await authorize(request, SCOPE_ADMIN)
    ident = request.path_params["ident"]
    traces = await hub.store.trace(ident)
    # The audit says who emitted or ingested it and how many streams it reached, zero included.
    audited = [audit_view(r) for r in await hub.store.list_audit(txn=ident, limit=20)]
    if not traces and not audited:
        raise NotFound(
            f"no SET with jti or txn {ident} (finished SETs are kept {hub.settings.retention_days:g} days)"
        )
    return json_response(
        {
            "id": ident,
            "audit": audited,
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
                    "receipts": [receipt_view(r) for r in t.receipts],
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
    principal = await authorize(request, SCOPE_ADMIN)
    body = await read_json(request, hub.settings.max_body_bytes)
    if isinstance(body, dict):
        body = {**body, "stream_id": request.path_params["stream_id"]}
    update = parse_status_update(body)
    stream = await hub.store.get_stream(update.stream_id)
    if stream is None:
        raise NotFound(f"no stream {update.stream_id}")
    stream = await hub.streams.set_status(stream, update, by_transmitter=True, by=principal.sub)
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
