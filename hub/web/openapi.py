"""``GET /openapi.json``: an OpenAPI 3.1 description of every route, with its error shapes.

The schemas use only the JSON Schema keywords that draft-07 and 2020-12 share, so the API
tests can check every response the hub gives against this document (tests/support/openapi.py)
and the two cannot drift apart. Objects stay open (``additionalProperties`` is not false)
wherever the standards let a peer or a later version add members.
"""

from __future__ import annotations

from typing import Any

from hub import __version__
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
)

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_NUMBER: Schema = {"type": ["number", "null"]}
OBJECT: Schema = {"type": "object"}


def _object(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


ERROR = _object({"err": STRING, "description": STRING})
SUBJECT: Schema = {"type": "object", "description": "a subject identifier (RFC 9493, SSF 1.0 §3)"}
DELIVERY = _object({"method": STRING}, {"endpoint_url": NULLABLE_STRING, "authorization_header": STRING})
STREAM = _object(
    {
        "stream_id": STRING,
        "iss": STRING,
        "aud": {"type": ["string", "array"]},
        "delivery": DELIVERY,
        "events_delivered": {"type": "array", "items": STRING},
    },
    {
        "events_supported": {"type": "array", "items": STRING},
        "events_requested": {"type": "array", "items": STRING},
        "description": STRING,
        "min_verification_interval": NUMBER,
        "inactivity_timeout": NUMBER,
    },
)
STATUS = _object(
    {"stream_id": STRING, "status": {"enum": ["enabled", "paused", "disabled"]}}, {"reason": STRING}
)
STREAM_REQUEST = _object(
    {},
    {"events_requested": {"type": "array", "items": STRING}, "delivery": DELIVERY, "description": STRING},
)
POLL_REQUEST = _object(
    {},
    {
        "maxEvents": {"type": "integer"},
        "returnImmediately": {"type": "boolean"},
        "ack": {"type": "array", "items": STRING},
        "setErrs": {"type": "object"},
    },
)
POLL_RESPONSE = _object(
    {"sets": {"type": "object", "additionalProperties": STRING}}, {"moreAvailable": {"type": "boolean"}}
)
METADATA = _object(
    {"spec_version": STRING, "issuer": STRING, "jwks_uri": STRING},
    {
        "delivery_methods_supported": {"type": "array", "items": STRING},
        "configuration_endpoint": STRING,
        "status_endpoint": STRING,
        "add_subject_endpoint": STRING,
        "remove_subject_endpoint": STRING,
        "verification_endpoint": STRING,
        "default_subjects": {"enum": ["ALL", "NONE"]},
    },
)
JWKS = _object({"keys": {"type": "array", "items": OBJECT}})
EMIT_EVENT = _object({"event": STRING, "subject": SUBJECT}, {"claims": OBJECT, "txn": STRING})
EMITTED = _object(
    {
        "txn": STRING,
        "sets": {"type": "array", "items": _object({"stream_id": STRING, "jti": STRING})},
        "dropped_streams": {"type": "array", "items": STRING},
    }
)
# The batch form: every element is checked before anything is queued (400 naming the first bad
# element's index, nothing queued); the SETs of all events are then queued together (SQLite: one
# transaction). One result per event, in order, each with its own txn.
EMIT_REQUEST: Schema = {
    "oneOf": [
        EMIT_EVENT,
        _object(
            {
                "events": {
                    "type": "array",
                    "items": EMIT_EVENT,
                    "description": "1 to 1,000 events; any other count is refused with 400",
                }
            }
        ),
    ]
}
EMIT_RESPONSE: Schema = {
    "oneOf": [EMITTED, _object({"events": {"type": "array", "items": EMITTED}})],
}
ADMIN_STREAM = _object(
    {"stream_id": STRING, "owner": STRING, "status": STRING, "queued": {"type": "integer"}},
    {
        "status_reason": NULLABLE_STRING,
        "oldest_undelivered_age": NULLABLE_NUMBER,
        "last_seen_at": NULLABLE_NUMBER,
        "last_success_at": NULLABLE_NUMBER,
        "next_retry_at": NULLABLE_NUMBER,
        "last_error": NULLABLE_STRING,
        "last_error_at": NULLABLE_NUMBER,
        "credentials_failing": {"type": "boolean"},
        "failing_since": NULLABLE_NUMBER,
    },
)
AUDIT_RECORD = _object(
    {"at": NUMBER, "kind": STRING, "stream_id": NULLABLE_STRING}, {"actor": STRING, "txn": STRING}
)
REMEDIATION_ACTION: Schema = {"enum": ["token_dropped", "request_refused", "policy_denied", "ignored"]}
RECEIPTS_REQUEST = _object(
    {
        "stream_id": STRING,
        "receipts": {
            "type": "array",
            "items": _object(
                {"jti": STRING, "action": REMEDIATION_ACTION},
                {"count": {"type": "integer"}, "at": NUMBER},
            ),
        },
    }
)
RECEIPTS_RESPONSE = _object({"kept": {"type": "integer"}, "skipped": {"type": "integer"}})
RECEIPT = _object({"action": STRING, "count": {"type": "integer"}, "at": NUMBER, "received_at": NUMBER})
TRACE = _object(
    {
        "id": STRING,
        "sets": {
            "type": "array",
            "items": _object(
                {"stream_id": STRING, "jti": STRING, "state": STRING, "attempts": {"type": "array"}},
                {
                    "txn": NULLABLE_STRING,
                    "event_type": STRING,
                    "queued_at": NUMBER,
                    "done_at": NULLABLE_NUMBER,
                    "receipts": {"type": "array", "items": RECEIPT},
                },
            ),
        },
    },
    {"audit": {"type": "array", "items": AUDIT_RECORD}},
)
ISSUER = _object(
    {"iss": STRING},
    {
        "jwks_uri": NULLABLE_STRING,
        "algorithms": {"type": "array", "items": STRING},
        "strict": {
            "type": "boolean",
            "description": "refuse, rather than repair, optional claims that do not fit",
        },
    },
)
# Issue #15: how the hub works with a transmitter that deviates from SSF 1.0.
UPSTREAM_COMPATIBILITY = _object(
    {},
    {
        "expected_issuer": {
            **NULLABLE_STRING,
            "description": "the issuer the metadata names when it is not the URL it is served from",
        },
        "create_fields": {**OBJECT, "description": "members sent on every stream write (e.g. aud)"},
        "omit_fields": {
            "type": "array",
            "items": {"enum": ["description", "events_requested"]},
            "description": "receiver members not sent",
        },
        "renewal": {"enum": ["patch", "replace", "recreate"], "description": "how the push token is renewed"},
        "push_auth": {
            "enum": ["authorization_header", "endpoint_url_token"],
            "description": "the delivery member that carries the push token",
        },
    },
)
UPSTREAM_STATE = _object(
    {},
    {
        "health": {"enum": ["pending", "connecting", "healthy", "failing", "degraded"]},
        "last_error": {
            **NULLABLE_STRING,
            "description": "why the last attempt failed, with the transmitter's own error text",
        },
        "delivery": {**NULLABLE_STRING, "description": "push or poll, as in use"},
        "adaptations": {
            "type": "array",
            "items": STRING,
            "description": "what the link did to work with this transmitter, newest last",
        },
    },
)
UPSTREAM = _object(
    {"upstream_id": STRING, "config_url": STRING},
    {
        "delivery": {"enum": ["push", "poll", "auto"]},
        "compatibility": UPSTREAM_COMPATIBILITY,
        "state": UPSTREAM_STATE,
    },
)


# Which errors each kind of route may answer with (every one has the ERROR shape).
AUTH_ERRORS = ("401", "403")
STORE_ERRORS = ("503",)


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    responses: dict[str, tuple[Schema | None, str]],
    *,
    body: Schema | None = None,
    scopes: tuple[str, ...] = (),
    errors: tuple[str, ...] = ("400",),
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "responses": {}}
    for status, (schema, description) in responses.items():
        out["responses"][status] = (
            {"description": description} if schema is None else _json(schema, description)
        )
    for status in (*errors, *(AUTH_ERRORS if scopes else ()), *STORE_ERRORS, "413"):
        out["responses"].setdefault(status, _json(ERROR, "refused: see err and description"))
    if scopes:
        out["security"] = [{"bearer": list(scopes)}]
    if body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if parameters:
        out["parameters"] = parameters
    return out


def _query(name: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": STRING}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STRING}


def _op(
    summary: str,
    status: str,
    schema: Schema | None,
    *,
    body: Schema | None = None,
    scopes: tuple[str, ...] = (),
    params: tuple[dict[str, Any], ...] = (),
    missing: bool = False,
    also: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """One operation: its success answer, 404 when ``missing``, ``also`` more refusals."""
    responses: dict[str, tuple[Schema | None, str]] = {status: (schema, summary)}
    if missing:
        responses["404"] = (ERROR, "no such thing (or not the caller's)")
    for code, why in also:
        responses[code] = (ERROR, why)
    return _operation(summary, responses, body=body, scopes=scopes, parameters=list(params) or None)


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _paths(prefix: str) -> dict[str, dict[str, Any]]:
    manage, read, admin = ("ssf.manage",), ("ssf.read", "ssf.manage"), ("ssf.admin",)
    sid, a = (_query("stream_id"),), prefix + ADMIN_PATH
    subject_body = _object({"stream_id": STRING, "subject": SUBJECT})
    budget = (("429", "subject-change budget spent (R-SUBJ-3)"),)
    errors_view = _object({"stream_id": STRING, "set_errors": _array(OBJECT), "audit": _array(OBJECT)})
    ingest = _op("push a SET in (RFC 8935)", "202", None, scopes=("ssf.ingest",))
    rotated = _object({"active_kid": STRING, "jwks": JWKS})
    rotate = _op("rotate the signing key; retire_now drops the old one at once", "200", rotated, scopes=admin)
    rotate["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": _object({}, {"retire_now": {"type": "boolean"}})}},
    }
    ingest["requestBody"] = {"required": True, "content": {"application/secevent+jwt": {"schema": STRING}}}
    ingest["responses"]["202"]["description"] = (
        "accepted and durable; empty body (R-PUSH-4). Optional event claims that did not fit were "
        "repaired rather than refused (unless the issuer is strict): SSF-Hub-Tolerated lists them"
    )
    ingest["responses"]["202"]["headers"] = {
        "SSF-Hub-Tolerated": {
            "description": "comma-separated event.member=action (action: dropped, mapped, absent)",
            "schema": STRING,
        }
    }
    return {
        "/healthz": {
            "get": _op("the hub and its store answer", "200", OBJECT, also=(("503", "the store is down"),))
        },
        "/metrics": {"get": _op("Prometheus text format", "200", None, scopes=("ssf.metrics", "ssf.admin"))},
        "/openapi.json": {"get": _op("this document", "200", OBJECT)},
        prefix + JWKS_PATH: {"get": _op("the keys SETs are signed with", "200", JWKS)},
        prefix + CONFIGURATION_PATH: {
            "get": _op(
                "read one stream, or all",
                "200",
                {"type": ["object", "array"]},
                scopes=read,
                params=sid,
                missing=True,
            ),
            "post": _op(
                "create a stream",
                "201",
                STREAM,
                body=STREAM_REQUEST,
                scopes=manage,
                also=(("409", "conflict"),),
            ),
            "patch": _op("update a stream", "200", STREAM, body=STREAM_REQUEST, scopes=manage, missing=True),
            "put": _op("replace a stream", "200", STREAM, body=STREAM_REQUEST, scopes=manage, missing=True),
            "delete": _op(
                "delete a stream and its queue", "204", None, scopes=manage, params=sid, missing=True
            ),
        },
        prefix + STATUS_PATH: {
            "get": _op("a stream's status", "200", STATUS, scopes=read, params=sid, missing=True),
            "post": _op("set a stream's status", "200", STATUS, body=STATUS, scopes=manage, missing=True),
        },
        prefix + ADD_SUBJECT_PATH: {
            "post": _op(
                "add a subject", "200", None, body=subject_body, scopes=manage, missing=True, also=budget
            )
        },
        prefix + REMOVE_SUBJECT_PATH: {
            "post": _op(
                "remove a subject", "204", None, body=subject_body, scopes=manage, missing=True, also=budget
            )
        },
        prefix + VERIFICATION_PATH: {
            "post": _op(
                "request a verification SET",
                "204",
                None,
                body=_object({"stream_id": STRING}, {"state": STRING}),
                scopes=manage,
                missing=True,
                also=(("429", "min_verification_interval"),),
            )
        },
        prefix + POLL_PATH + "/{stream_id}": {
            "post": _op(
                "poll, acknowledge, report errors (RFC 8936)",
                "200",
                POLL_RESPONSE,
                body=POLL_REQUEST,
                scopes=manage,
                params=(_path("stream_id"),),
                missing=True,
            )
        },
        prefix + INGEST_PATH: {"post": ingest},
        prefix + RECEIPTS_PATH: {
            "post": _op(
                "report what the receiver did with SETs of its stream (remediation receipts, an "
                "ssf-hub extension); receipts for SETs the stream never held are skipped",
                "202",
                RECEIPTS_RESPONSE,
                body=RECEIPTS_REQUEST,
                scopes=manage,
                missing=True,
            )
        },
        a + "/events": {
            "post": _op(
                "emit an event, or a batch of events ({events: [...]}, one txn each, all checked first)",
                "200",
                EMIT_RESPONSE,
                body=EMIT_REQUEST,
                scopes=admin,
            )
        },
        a + "/streams": {
            "get": _op("every stream with its health", "200", _array(ADMIN_STREAM), scopes=admin)
        },
        a + "/streams/{stream_id}/status": {
            "post": _op(
                "set any stream's status",
                "200",
                STATUS,
                body=_object({"status": STRING}, {"reason": STRING}),
                scopes=admin,
                params=(_path("stream_id"),),
                missing=True,
            )
        },
        a + "/streams/{stream_id}/errors": {
            "get": _op(
                "setErrs and audit",
                "200",
                errors_view,
                scopes=admin,
                params=(_path("stream_id"),),
                missing=True,
            )
        },
        a + "/keys/rotate": {"post": rotate},
        a + "/audit": {
            "get": _op(
                "the audit trail, newest first",
                "200",
                _object({"records": _array(AUDIT_RECORD)}),
                scopes=admin,
                params=tuple(_query(n) for n in ("since", "txn", "stream_id", "actor", "limit")),
            )
        },
        a + "/trace/{ident}": {
            "get": _op(
                "where a SET or txn went", "200", TRACE, scopes=admin, params=(_path("ident"),), missing=True
            )
        },
        **_console_paths(),
        a + "/issuers": {
            "get": _op("trusted upstream issuers", "200", _array(ISSUER), scopes=admin),
            "post": _operation(
                "trust an issuer (201), or change one (200)",
                {"201": (ISSUER, "added"), "200": (ISSUER, "updated")},
                body=OBJECT,
                scopes=admin,
            ),
        },
        a + "/issuers/{iss}": {
            "get": _op("one issuer", "200", ISSUER, scopes=admin, params=(_path("iss"),), missing=True),
            "delete": _op(
                "stop trusting an issuer", "204", None, scopes=admin, params=(_path("iss"),), missing=True
            ),
        },
        a + "/upstreams": {
            "get": _op("upstream subscriptions", "200", _array(UPSTREAM), scopes=admin),
            "post": _op(
                "subscribe to a transmitter",
                "201",
                UPSTREAM,
                body=OBJECT,
                scopes=admin,
                also=(("409", "exists"),),
            ),
        },
        a + "/upstreams/{upstream_id}": {
            "get": _op(
                "one upstream", "200", UPSTREAM, scopes=admin, params=(_path("upstream_id"),), missing=True
            ),
            "delete": _op(
                "unsubscribe", "204", None, scopes=admin, params=(_path("upstream_id"),), missing=True
            ),
        },
    }


def _console_paths() -> dict[str, dict[str, Any]]:
    """The web console (hub.console): a page, its static files, and HTML fragments (text/html,
    or text/event-stream for a drill's live fan-out) for ``ssf.admin`` holders."""
    admin, c = ("ssf.admin",), "/console"
    sid, txn = (_path("stream_id"),), (_path("txn"),)
    form = _object({}, {})

    def html(summary: str, **options: Any) -> dict[str, Any]:
        return _op(summary, "200", None, scopes=admin, **options)

    return {
        c: {"get": _op("the console page (no data; sign in with an ssf.admin token)", "200", None)},
        c + "/static/{name}": {
            "get": _op(
                "the console's script and style sheet", "200", None, params=(_path("name"),), missing=True
            )
        },
        c + "/api/overview": {"get": html("overview: streams by status and method, rates, failing first")},
        c + "/api/streams": {
            "get": html(
                "streams, filtered and sorted",
                params=tuple(_query(n) for n in ("status", "method", "q", "sort")),
            )
        },
        c + "/api/streams/{stream_id}": {
            "get": html("one stream: config (secrets masked), health", params=sid, missing=True)
        },
        c + "/api/streams/{stream_id}/status": {
            "post": html("pause, enable or disable a stream", params=sid, missing=True, body=form)
        },
        c + "/api/streams/{stream_id}/retry": {
            "post": html("a push stream's queue due now", params=sid, missing=True)
        },
        c + "/api/drill": {
            "get": html("the drill form for an event", params=(_query("event"),)),
            "post": html("send a drill (a test signal, audited as one)", body=form),
        },
        c + "/api/drill/{txn}/events": {
            "get": html("a drill's fan-out, live (text/event-stream)", params=(*txn, _query("for")))
        },
        c + "/api/trace": {"get": html("where a SET or txn went, with receipts", params=(_query("ident"),))},
        c + "/api/sources": {"get": html("trusted issuers and upstream subscriptions")},
        c + "/api/audit": {
            "get": html(
                "audit search",
                params=tuple(_query(n) for n in ("since", "txn", "stream_id", "actor", "limit")),
            )
        },
    }


def openapi_document(issuer: str, prefix: str, well_known: str) -> dict[str, Any]:
    paths = _paths(prefix)
    paths[well_known] = {"get": _op("transmitter metadata (SSF 1.0 §7)", "200", METADATA)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ssf-hub",
            "version": __version__,
            "description": "A Shared Signals hub (SSF 1.0, CAEP, RISC)",
        },
        "servers": [{"url": issuer.removesuffix(prefix) or issuer}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": ERROR, "Stream": STREAM, "Status": STATUS, "Subject": SUBJECT},
        },
        "paths": paths,
    }
