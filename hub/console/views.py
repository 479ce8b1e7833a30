"""Console fragments: overview, streams and their actions, trace, issuers and upstreams, audit.

Each handler needs an ``ssf.admin`` bearer token and answers an HTML fragment the console
script puts in the page. Stream rows come from the admin listing (:func:`stream_rows`), which
drops the push ``authorization_header``; nothing here reads a secret.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hub.console.access import admin, hub_of, read_form
from hub.console.rates import RateMeter
from hub.console.render import page
from hub.core.audit import audit_query, audit_view
from hub.core.model import PUSH_METHOD, AuditRecord, SetTrace, Status
from hub.core.remediation import receipt_view
from hub.core.status import parse_status_update
from hub.errors import InvalidRequest, NotFound
from hub.runtime.listing import stream_rows

SORTS = {
    "failing": lambda s: (not s["last_error"], s["status"] == "enabled", -s["queued"], s["stream_id"]),
    "queued": lambda s: (-s["queued"], s["stream_id"]),
    "owner": lambda s: (s["owner"], s["stream_id"]),
    "status": lambda s: (s["status"], s["stream_id"]),
}
RECENT_SETS = 20


def _failing_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=SORTS["failing"])


async def overview(request: Request) -> Response:
    hub = hub_of(request)
    await admin(request)
    rows = await stream_rows(hub)
    by_status: Counter[str] = Counter(s["status"] for s in rows)
    by_method: Counter[str] = Counter(s["delivery"]["method"] for s in rows)
    meter: RateMeter | None = getattr(request.app.state, "console_rates", None)
    if meter is None:
        meter = request.app.state.console_rates = RateMeter()
    rate_in, rate_out = meter.per_minute()
    failing = [s for s in _failing_first(rows) if s["last_error"] or s["status"] != "enabled"]
    return page(
        "overview.html",
        streams=len(rows),
        by_status=sorted(by_status.items()),
        by_method=sorted(by_method.items()),
        queued=sum(s["queued"] for s in rows),
        rate_in=rate_in,
        rate_out=rate_out,
        failing=failing[:20],
        now=hub.transmitter.clock(),
    )


async def streams(request: Request) -> Response:
    hub = hub_of(request)
    await admin(request)
    status = request.query_params.get("status") or ""
    method = request.query_params.get("method") or ""
    text = (request.query_params.get("q") or "").strip()
    sort = request.query_params.get("sort") or "failing"
    if status and status not in {s.value for s in Status}:
        raise InvalidRequest("status is enabled, paused or disabled")
    if method and method not in ("push", "poll"):
        raise InvalidRequest("method is push or poll")
    if sort not in SORTS:
        raise InvalidRequest(f"sort is one of {', '.join(SORTS)}")
    rows = [
        s
        for s in await stream_rows(hub)
        if (not status or s["status"] == status)
        and (not method or (s["delivery"]["method"] == PUSH_METHOD) == (method == "push"))
        and (not text or text in s["stream_id"] or text in s["owner"] or text in (s.get("description") or ""))
    ]
    rows.sort(key=SORTS[sort])
    return page(
        "streams.html",
        rows=rows,
        status=status,
        method=method,
        q=text,
        sort=sort,
        sorts=list(SORTS),
        now=hub.transmitter.clock(),
    )


async def stream_detail(request: Request) -> Response:
    await admin(request)
    return await _detail(request, request.path_params["stream_id"])


async def _detail(request: Request, stream_id: str, notice: str = "") -> Response:
    hub = hub_of(request)
    stream = await hub.store.get_stream(stream_id)
    if stream is None:
        raise NotFound(f"no stream {stream_id}")
    (row,) = await stream_rows(hub, [stream])
    subjects = [s for s in await hub.store.list_subjects(stream_id) if not s.excluded]
    recent = [
        r
        for r in await hub.store.list_audit(stream_id, limit=10)
        if r.kind not in ("event_emitted", "event_ingested")
    ]
    sets = await _recent_sets(request, stream_id)
    return page(
        "stream.html",
        s=row,
        subjects=len(subjects),
        sets=sets,
        audit=[audit_view(r) for r in recent],
        set_errors=await hub.store.list_set_errors(stream_id, 10),
        notice=notice,
        now=hub.transmitter.clock(),
    )


async def _recent_sets(request: Request, stream_id: str) -> list[dict[str, Any]]:
    """The stream's recent SETs: those still queued, then those of the latest emits and ingests
    that reached it (the audit names the streams of each), newest first."""
    hub = hub_of(request)
    idents = [item.jti for item in await hub.store.pending(stream_id, RECENT_SETS)]
    for record in await hub.store.list_audit(limit=200):
        txn = record.detail.get("txn")
        if isinstance(txn, str) and stream_id in record.detail.get("stream_ids", []):
            idents.append(txn)
    found: dict[str, SetTrace] = {}
    for ident in idents:
        if len(found) >= RECENT_SETS:
            break
        for t in await hub.store.trace(ident):
            if t.stream_id == stream_id:
                found.setdefault(t.jti, t)
    return sorted((_set_view(t) for t in found.values()), key=lambda s: -s["queued_at"])


def _set_view(t: SetTrace) -> dict[str, Any]:
    return {
        "stream_id": t.stream_id,
        "jti": t.jti,
        "txn": t.txn,
        "event": t.event_type.rsplit("/", 1)[-1],
        "state": t.state.value,
        "queued_at": t.queued_at,
        "done_at": t.done_at,
        "took": None if t.done_at is None else t.done_at - t.queued_at,
        "attempts": t.attempts,
        "receipts": [receipt_view(r) for r in t.receipts],
    }


async def stream_status(request: Request) -> Response:
    """POST {"status", "reason"?}: pause, enable or disable any stream (audited, announced)."""
    hub = hub_of(request)
    principal = await admin(request)
    body = await read_form(request)
    stream_id = request.path_params["stream_id"]
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if not (k == "reason" and v == "")}
        body["stream_id"] = stream_id
    update = parse_status_update(body)
    stream = await hub.store.get_stream(stream_id)
    if stream is None:
        raise NotFound(f"no stream {stream_id}")
    await hub.streams.set_status(stream, update, by_transmitter=True, by=principal.sub)
    return await _detail(request, stream_id, notice=f"status set to {update.status.value}")


async def stream_retry(request: Request) -> Response:
    """POST: a push stream's queued SETs become due now (a receiver that came back)."""
    hub = hub_of(request)
    principal = await admin(request)
    stream_id = request.path_params["stream_id"]
    stream = await hub.store.get_stream(stream_id)
    if stream is None:
        raise NotFound(f"no stream {stream_id}")
    if stream.delivery.method != PUSH_METHOD:
        raise InvalidRequest("retry now is for push streams; a poll receiver fetches when it polls")
    moved = await hub.store.reschedule_pending(stream_id, next_attempt_at=0.0)
    hub.transmitter.signal.notify([stream_id])
    at = hub.transmitter.clock()
    await hub.store.append_audit(
        AuditRecord(at, "retry_requested", stream_id, {"actor": principal.sub, "sets": moved})
    )
    return await _detail(request, stream_id, notice=f"{moved} queued SET(s) due now")


async def trace(request: Request) -> Response:
    hub = hub_of(request)
    await admin(request)
    ident = (request.query_params.get("ident") or "").strip()
    if not ident:
        return page("trace.html", ident="", sets=[], audit=[])
    if len(ident) > 256:
        raise InvalidRequest("a jti or txn is at most 256 characters")
    traces = await hub.store.trace(ident)
    audit = [audit_view(r) for r in await hub.store.list_audit(txn=ident, limit=20)]
    streams = await hub.store.get_streams({t.stream_id for t in traces})
    owners = {sid: s.owner for sid, s in streams.items()}
    sets = [_set_view(t) | {"owner": owners.get(t.stream_id, "(deleted)")} for t in traces]
    return page("trace.html", ident=ident, sets=sets, audit=audit)


async def sources(request: Request) -> Response:
    """Trusted issuers and upstream subscriptions with their link health."""
    hub = hub_of(request)
    await admin(request)
    issuers = [i.public_view() for i in await hub.issuers.all_issuers()]
    upstreams = [u.public_view() for u in await hub.store.list_upstreams()]
    return page("sources.html", issuers=issuers, upstreams=upstreams)


async def audit(request: Request) -> Response:
    hub = hub_of(request)
    await admin(request)
    params = {k: v for k, v in request.query_params.items() if v}
    query = audit_query(params)
    records = await hub.store.list_audit(
        query.stream_id, query.limit, since=query.since, txn=query.txn, actor=query.actor
    )
    views = [audit_view(r) for r in records]
    rows = [
        {
            "at": v["at"],
            "kind": v["kind"],
            "stream_id": v["stream_id"],
            "actor": v.get("actor", "-"),
            "txn": v.get("txn"),
            "drill": bool(v.get("drill")),
            "detail": ", ".join(
                f"{k}={val}"
                for k, val in v.items()
                if k not in ("at", "kind", "stream_id", "actor", "txn", "drill", "subject")
            ),
        }
        for v in views
    ]
    return page("audit.html", rows=rows, params=params)
