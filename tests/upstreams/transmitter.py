"""A small SSF transmitter on loopback with switches for the deviations real ones show (issue #15).

It signs its SETs with its own key (JWKS at ``/jwks``), keeps streams in memory, delivers by
poll (``/poll/{stream_id}``, RFC 8936) or push (RFC 8935), and answers stream management
like a strict SSF 1.0 transmitter unless a :class:`Quirks` switch says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.idp import new_key, sign
from tests.support.servers import serve_app

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
STREAM_UPDATED = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"
MANAGEMENT_TOKEN = "transmitter-management-token"


@dataclass
class Quirks:
    issuer: str | None = None  # a fixed issuer, unlike the URL the metadata is served from
    issuer_is_metadata_url: bool = False  # the metadata's issuer is the metadata URL itself
    delivery_methods: tuple[str, ...] = (PUSH, POLL)
    events_supported: tuple[str, ...] | None = None  # None: every event type
    events_supported_in_metadata: bool = False  # a non-standard metadata member some send
    refuse_unsupported_events: bool = False  # 400 naming them instead of intersecting
    require_aud: bool = False  # FastAPI 422 {"detail": [...]} on a write without aud
    forbid_description: bool = False  # FastAPI 422 on a write with description
    ignore_delivery_patch: bool = False  # PATCH of delivery answers 200 and changes nothing
    no_status_post: bool = False  # the status endpoint has GET only (405 for POST)
    nulls: bool = False  # null for optional strings in metadata, stream config and status
    token_member: str = "authorization_header"  # or endpoint_url_token (sent back as Bearer)


@dataclass
class Stream:
    stream_id: str
    aud: str | list[str]
    delivery: dict[str, Any]
    events_requested: list[str]
    events_delivered: list[str]
    description: str | None
    status: str = "enabled"
    reason: str | None = None
    queue: dict[str, str] = field(default_factory=dict)  # jti -> SET


@dataclass
class FakeTransmitter:
    quirks: Quirks = field(default_factory=Quirks)
    url: str = ""
    receiver_aud: str = ""  # aud of a stream created without one (the hub's issuer)
    key: Any = field(default_factory=lambda: new_key("ES256"))
    streams: dict[str, Stream] = field(default_factory=dict)
    requests: list[tuple[str, int]] = field(default_factory=list)  # (method, status) of writes
    pushes: list[int] = field(default_factory=list)  # push responses' status codes
    # Set: a status read (GET /status) answers what it read, but only once this is set; the
    # answer is slow on the wire, and the stream can change meanwhile.
    status_gate: asyncio.Event | None = None
    status_held: asyncio.Event = field(default_factory=asyncio.Event)  # a read waits at the gate
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def metadata_url(self) -> str:
        return self.url + "/.well-known/ssf-configuration"

    @property
    def issuer(self) -> str:
        if self.quirks.issuer_is_metadata_url:
            return self.metadata_url
        return self.quirks.issuer or self.url

    # -- what a test does at the transmitter -------------------------------------------------------
    def emit(self, event: str, subject: dict[str, Any], *, txn: str) -> int:
        """A SET about ``subject`` to every enabled stream that asked for ``event``; how many."""
        sent = 0
        for stream in list(self.streams.values()):
            if event in stream.events_delivered and stream.status == "enabled":
                self._deliver(stream, {event: {"event_timestamp": int(time.time())}}, subject, txn=txn)
                sent += 1
        return sent

    def disable(self, stream_id: str, reason: str | None) -> None:
        stream = self.streams[stream_id]
        stream.status, stream.reason = "disabled", reason

    def announce(self, stream_id: str, status: str | None = None, reason: str | None = None) -> None:
        """Send the stream's receiver a stream-updated event (R-STATUS-7) with its status now, or
        with ``status``: the one it is about to take (the event goes *before* the stop)."""
        stream = self.streams[stream_id]
        event: dict[str, Any] = {"status": status or stream.status}
        if (reason if status else stream.reason) is not None:
            event["reason"] = reason if status else stream.reason
        self._deliver(stream, {STREAM_UPDATED: event}, {"format": "opaque", "id": stream_id})

    # -- delivery ------------------------------------------------------------------------------------------
    def _deliver(
        self, stream: Stream, events: dict[str, Any], subject: dict[str, Any], *, txn: str | None = None
    ) -> None:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "jti": uuid.uuid4().hex,
            "iat": int(time.time()),
            "aud": stream.aud,
            "sub_id": subject,
            "events": events,
        }
        if txn is not None:
            claims["txn"] = txn
        token = sign(claims, self.key, alg="ES256")
        if stream.delivery.get("method") == POLL:
            stream.queue[claims["jti"]] = token
            self._arrived.set()
            return
        task = asyncio.get_running_loop().create_task(self._push(dict(stream.delivery), token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, delivery: dict[str, Any], token: str) -> None:
        headers = {"Content-Type": "application/secevent+jwt"}
        if "authorization_header" in delivery:
            headers["Authorization"] = delivery["authorization_header"]
        elif "endpoint_url_token" in delivery:
            headers["Authorization"] = "Bearer " + delivery["endpoint_url_token"]
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(delivery["endpoint_url"], content=token, headers=headers)
        self.pushes.append(response.status_code)

    # -- the HTTP side ---------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        status_methods = ["GET"] if self.quirks.no_status_post else ["GET", "POST"]
        return Starlette(
            routes=[
                Route("/.well-known/ssf-configuration", self._metadata),
                Route("/jwks", self._jwks),
                Route("/streams", self._streams, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]),
                Route("/status", self._status, methods=status_methods),
                Route("/verify", self._verify, methods=["POST"]),
                Route("/poll/{stream_id}", self._poll, methods=["POST"]),
            ]
        )

    async def _metadata(self, request: Request) -> JSONResponse:
        doc: dict[str, Any] = {
            "spec_version": "1_0",
            "issuer": self.issuer,
            "jwks_uri": self.url + "/jwks",
            "delivery_methods_supported": list(self.quirks.delivery_methods),
            "configuration_endpoint": self.url + "/streams",
            "status_endpoint": self.url + "/status",
            "verification_endpoint": self.url + "/verify",
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        }
        if self.quirks.events_supported_in_metadata and self.quirks.events_supported is not None:
            doc["events_supported"] = list(self.quirks.events_supported)
        if self.quirks.nulls:
            doc.update(
                add_subject_endpoint=None,
                remove_subject_endpoint=None,
                default_subjects=None,
                authorization_schemes=None,
                critical_subject_members=None,
                delivery_methods_supported=None,
            )
        return JSONResponse(doc)

    async def _jwks(self, request: Request) -> JSONResponse:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {MANAGEMENT_TOKEN}"

    def _config(self, stream: Stream) -> dict[str, Any]:
        delivery = {k: v for k, v in stream.delivery.items() if k != "endpoint_url_token"}  # a secret
        doc: dict[str, Any] = {
            "stream_id": stream.stream_id,
            "iss": self.issuer,
            "aud": stream.aud,
            "delivery": delivery,
            "events_requested": stream.events_requested,
            "events_delivered": stream.events_delivered,
            "description": stream.description,
        }
        if self.quirks.nulls:
            delivery.setdefault("authorization_header", None)
            doc.update(min_verification_interval=None, inactivity_timeout=None)
        elif doc["description"] is None:
            del doc["description"]
        return doc

    async def _streams(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"err": "invalid_token", "description": "no management token"}, 401)
        if request.method in ("GET", "DELETE"):
            stream = self.streams.get(request.query_params.get("stream_id", ""))
            if stream is None:
                return JSONResponse({"err": "not_found", "description": "no such stream"}, 404)
            if request.method == "DELETE":
                del self.streams[stream.stream_id]
                return Response(status_code=204)
            return JSONResponse(self._config(stream))
        body = await request.json()
        response = self._write(request.method, body)
        self.requests.append((request.method, response.status_code))
        return response

    def _write(self, method: str, body: dict[str, Any]) -> Response:
        refused = self._fastapi_refusal(body)
        if refused is not None:
            return refused
        if method == "POST":
            return self._create(body)
        stream = self.streams.get(body.get("stream_id", ""))
        if stream is None:
            return JSONResponse({"err": "not_found", "description": "no such stream"}, 404)
        if "delivery" in body and not (method == "PATCH" and self.quirks.ignore_delivery_patch):
            delivery = self._delivery(body["delivery"], stream.stream_id)
            if isinstance(delivery, Response):
                return delivery
            stream.delivery = delivery
        return JSONResponse(self._config(stream))

    def _fastapi_refusal(self, body: dict[str, Any]) -> Response | None:
        """What a FastAPI/pydantic transmitter answers: 422 with a detail list echoing the input."""
        detail = []
        if self.quirks.require_aud and "aud" not in body:
            detail.append({"type": "missing", "loc": ["body", "aud"], "msg": "Field required", "input": body})
        if self.quirks.forbid_description and "description" in body:
            detail.append(
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "description"],
                    "msg": "Extra inputs are not permitted",
                    "input": body,
                }
            )
        return JSONResponse({"detail": detail}, 422) if detail else None

    def _delivery(self, delivery: dict[str, Any], stream_id: str) -> dict[str, Any] | Response:
        method = delivery.get("method")
        if method not in self.quirks.delivery_methods:
            return JSONResponse(
                {"err": "invalid_request", "description": f"delivery {method} not offered"}, 400
            )
        if method == POLL:
            return {"method": POLL, "endpoint_url": f"{self.url}/poll/{stream_id}"}
        member = self.quirks.token_member
        if not isinstance(delivery.get(member), str):
            return JSONResponse(
                {"err": "invalid_request", "description": f"delivery.{member} is required"}, 400
            )
        return {"method": PUSH, "endpoint_url": delivery["endpoint_url"], member: delivery[member]}

    def _create(self, body: dict[str, Any]) -> Response:
        supported = self.quirks.events_supported
        requested = list(body.get("events_requested") or [])
        unsupported = [e for e in requested if supported is not None and e not in supported]
        if unsupported and self.quirks.refuse_unsupported_events:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "unsupported event types: " + ", ".join(unsupported),
                },
                400,
            )
        stream_id = uuid.uuid4().hex
        delivery = self._delivery(body.get("delivery") or {"method": POLL}, stream_id)
        if isinstance(delivery, Response):
            return delivery
        stream = Stream(
            stream_id=stream_id,
            aud=body.get("aud") or self.receiver_aud,
            delivery=delivery,
            events_requested=requested,
            events_delivered=[e for e in requested if e not in unsupported],
            description=body.get("description"),
        )
        self.streams[stream_id] = stream
        return JSONResponse(self._config(stream), 201)

    async def _status(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"err": "invalid_token", "description": "no management token"}, 401)
        if request.method == "POST":
            body = await request.json()
            stream = self.streams.get(body.get("stream_id", ""))
            if stream is None:
                return JSONResponse({"err": "not_found", "description": "no such stream"}, 404)
            stream.status, stream.reason = body["status"], body.get("reason")
        else:
            stream = self.streams.get(request.query_params.get("stream_id", ""))
            if stream is None:
                return JSONResponse({"err": "not_found", "description": "no such stream"}, 404)
        doc: dict[str, Any] = {
            "stream_id": stream.stream_id,
            "status": stream.status,
            "reason": stream.reason,
        }
        if doc["reason"] is None and not self.quirks.nulls:
            del doc["reason"]
        if request.method == "GET" and self.status_gate is not None:
            self.status_held.set()
            await self.status_gate.wait()
        return JSONResponse(doc)

    async def _verify(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"err": "invalid_token", "description": "no management token"}, 401)
        body = await request.json()
        stream = self.streams.get(body.get("stream_id", ""))
        if stream is None:
            return JSONResponse({"err": "not_found", "description": "no such stream"}, 404)
        event: dict[str, Any] = {"state": body["state"]} if "state" in body else {}
        self._deliver(stream, {VERIFICATION: event}, {"format": "opaque", "id": stream.stream_id})
        return Response(status_code=204)

    async def _poll(self, request: Request) -> Response:
        if not self._authorized(request):
            return JSONResponse({"err": "invalid_token", "description": "no management token"}, 401)
        stream = self.streams.get(request.path_params["stream_id"])
        if stream is None:
            return JSONResponse({"err": "not_found", "description": "no such stream"}, 404)
        body = await request.json()
        for jti in body.get("ack", []):
            stream.queue.pop(jti, None)
        for jti in body.get("setErrs", {}):
            stream.queue.pop(jti, None)
        if not stream.queue and not body.get("returnImmediately"):
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), 0.5)
        sets = dict(list(stream.queue.items())[: int(body.get("maxEvents", 100))])
        return JSONResponse({"sets": sets, "moreAvailable": len(stream.queue) > len(sets)})


@contextlib.asynccontextmanager
async def run_transmitter(quirks: Quirks | None = None) -> AsyncIterator[FakeTransmitter]:
    transmitter = FakeTransmitter(quirks or Quirks())
    async with serve_app(transmitter.app()) as url:
        transmitter.url = url
        yield transmitter
        for task in list(transmitter._tasks):
            task.cancel()
