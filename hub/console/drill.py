"""Revocation drills: pick an event from the catalogue, build a subject, send it as a test
signal, and watch it fan out live (server-sent events): per stream queued -> delivered or
acknowledged with milliseconds, then what each receiver reported doing (receipts).

A drill is an ordinary emit (same routing, signing and delivery) whose audit record carries
``"drill": true`` and the operator's ``sub`` as actor. The watch stream reads the trace from
the store, so it works the same whichever replica delivers the SETs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from hub.console.access import admin, hub_of, read_form
from hub.console.render import SECURITY_HEADERS, page, render
from hub.core.inputs import decode_json
from hub.core.model import DeliveryState, SetTrace
from hub.core.remediation import receipt_view
from hub.errors import InvalidRequest
from receivers.events import CATALOGUE, SESSION_REVOKED, EventType

SUBJECT_FORMATS = ("email", "opaque", "complex")
DEFAULT_WATCH_SECONDS = 60.0
MAX_WATCH_SECONDS = 300.0
WATCH_INTERVAL = 0.1
# Once every SET is finished the watch goes on this long for receipts, then ends.
RECEIPT_GRACE_SECONDS = 10.0


def drill_events() -> list[EventType]:
    """What a drill can send: the CAEP and RISC types a stream can request."""
    return [t for t in CATALOGUE if t.family != "ssf" and not t.deprecated]


def claim_fields(event_type: EventType) -> list[dict[str, Any]]:
    """One form field per claim the event's schema defines, with how to read its value."""
    required = set(event_type.schema.get("required", []))
    fields = []
    for name, prop in event_type.schema["properties"].items():
        kind = "string"
        if "enum" in prop:
            kind = "enum"
        elif prop.get("type") == "number":
            kind = "number"
        elif isinstance(prop.get("type"), list):
            kind = "reason"  # a language map, or a plain string (reason_admin, reason_user)
        elif prop.get("type") in ("object", "array"):
            kind = "json"
        fields.append(
            {"name": name, "kind": kind, "required": name in required, "options": prop.get("enum", [])}
        )
    return sorted(fields, key=lambda f: (not f["required"], f["name"]))


def _event_type(name: str) -> EventType:
    found = CATALOGUE.find(name)
    if found is None or found not in drill_events():
        raise InvalidRequest(f"unknown event {name!r}: pick one of the CAEP or RISC events")
    return found


async def drill_page(request: Request) -> Response:
    await admin(request)
    event_type = _event_type(request.query_params.get("event") or SESSION_REVOKED)
    return page(
        "drill.html",
        events=drill_events(),
        chosen=event_type,
        fields=claim_fields(event_type),
        formats=SUBJECT_FORMATS,
    )


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be a string")
    return value.strip()


def build_subject(form: dict[str, Any]) -> dict[str, Any]:
    """The subject identifier from the drill form (checked again, fully, by the emit)."""
    fmt = _text(form, "subject_format") or "email"
    email, opaque, session = _text(form, "email"), _text(form, "opaque_id"), _text(form, "session_id")
    if fmt == "email":
        return {"format": "email", "email": email}
    if fmt == "opaque":
        return {"format": "opaque", "id": opaque}
    if fmt == "complex":
        subject: dict[str, Any] = {"format": "complex", "user": {"format": "email", "email": email}}
        if session:
            subject["session"] = {"format": "opaque", "id": session}
        return subject
    raise InvalidRequest(f"subject_format is one of {', '.join(SUBJECT_FORMATS)}")


def build_claims(event_type: EventType, form: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for field in claim_fields(event_type):
        raw = _text(form, "claim." + field["name"])
        if not raw:
            continue
        if field["kind"] == "number":
            try:
                claims[field["name"]] = float(raw)
            except ValueError:
                raise InvalidRequest(f"{field['name']} must be a number") from None
        elif field["kind"] == "reason":
            claims[field["name"]] = {"en": raw}
        elif field["kind"] == "json":
            claims[field["name"]] = decode_json(raw, what=field["name"])
        else:
            claims[field["name"]] = raw
    return claims


async def start_drill(request: Request) -> Response:
    """POST the drill form (a JSON object of its fields) -> the live fan-out panel."""
    hub = hub_of(request)
    principal = await admin(request)
    form = await read_form(request)
    if not isinstance(form, dict):
        raise InvalidRequest("the body is the drill form as a JSON object")
    event_type = _event_type(_text(form, "event"))
    result = await hub.transmitter.emit(
        event_type.uri,
        build_subject(form),
        build_claims(event_type, form),
        actor=principal.sub,
        drill=True,
    )
    return page("drill_watch.html", txn=result.txn, event=event_type.name, streams=len(result.sets))


def fan_out_rows(traces: list[SetTrace], owners: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for t in traces:
        rows.append(
            {
                "stream_id": t.stream_id,
                "owner": owners.get(t.stream_id, "(deleted)"),
                "state": t.state.value,
                "took": None if t.done_at is None else t.done_at - t.queued_at,
                "attempts": len(t.attempts),
                "receipts": [receipt_view(r) | {"after": r.received_at - t.queued_at} for r in t.receipts],
            }
        )
    return rows


async def watch_drill(request: Request) -> Response:
    """GET -> text/event-stream: a ``fanout`` event (JSON: the rows as HTML, and whether every
    SET is finished) whenever the drill's trace changes, then ``done``."""
    hub = hub_of(request)
    await admin(request)
    txn = request.path_params["txn"]
    try:
        seconds = float(request.query_params.get("for", DEFAULT_WATCH_SECONDS))
    except ValueError:
        raise InvalidRequest("for is a number of seconds") from None
    if not 0 < seconds <= MAX_WATCH_SECONDS:
        raise InvalidRequest(f"for is from 0 to {MAX_WATCH_SECONDS:g} seconds")

    async def events() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        last, settled_at = "", None
        while loop.time() < deadline:
            traces = await hub.store.trace(txn)
            streams = await hub.store.get_streams({t.stream_id for t in traces})
            rows = fan_out_rows(traces, {sid: s.owner for sid, s in streams.items()})
            finished = all(t.state is not DeliveryState.PENDING for t in traces)
            html = render("drill_rows.html", rows=rows)
            if html != last:
                last = html
                yield _sse("fanout", {"html": html, "finished": finished})
            if not traces:
                break  # no such txn, or it reached no stream: nothing will arrive
            if finished:
                settled_at = settled_at or loop.time()
                if loop.time() - settled_at >= RECEIPT_GRACE_SECONDS:
                    break
            await asyncio.sleep(WATCH_INTERVAL)
        yield _sse("done", {})

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _sse(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
