"""Stream-configuration rules of SSF 1.0 §8.1.1 (R-STREAM-3, -5, -6, -10, -11).

Who may set what: the receiver supplies ``events_requested``, ``delivery`` (the method,
and for push the ``endpoint_url`` and ``authorization_header``) and ``description``;
the transmitter supplies everything else. ``events_delivered`` is supported ∩ requested.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hub.core.inputs import parse_url
from hub.core.model import POLL_METHOD, PUSH_METHOD, Delivery, Stream, SubjectMode
from hub.errors import InvalidRequest
from receivers.events import CATALOGUE

RECEIVER_FIELDS = ("events_requested", "delivery", "description")
TRANSMITTER_FIELDS = (
    "stream_id",
    "iss",
    "aud",
    "events_supported",
    "events_delivered",
    "min_verification_interval",
    "inactivity_timeout",
)
DESCRIPTION_MAX = 1024  # the transmitter MAY truncate (R-STREAM-3)
AUTH_HEADER_MAX = 4096
# AMB-5: SSE ID1 delivery URIs, accepted and normalised to the RFC URNs.
LEGACY_METHODS = {
    "https://schemas.openid.net/secevent/risc/delivery-method/push": PUSH_METHOD,
    "https://schemas.openid.net/secevent/risc/delivery-method/poll": POLL_METHOD,
}


@dataclass(frozen=True, slots=True)
class ReceiverFields:
    """The receiver-supplied part of a request body, type-checked."""

    events_requested: tuple[str, ...] | None
    delivery: Delivery | None
    description: str | None
    present: frozenset[str]


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """What this transmitter offers a new stream; comes from settings."""

    supported_events: tuple[str, ...]
    delivery_methods: tuple[str, ...]
    min_verification_interval: int
    inactivity_timeout: int | None


def parse_receiver_fields(body: Any) -> ReceiverFields:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    requested = body.get("events_requested")
    if "events_requested" in body and requested is not None:
        if not isinstance(requested, list) or not all(isinstance(u, str) for u in requested):
            raise InvalidRequest("events_requested must be an array of event-type URIs")
        requested = tuple(dict.fromkeys(_event_uri(u) for u in requested))
    description = body.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise InvalidRequest("description must be a string")
        description = description[:DESCRIPTION_MAX]
    delivery = body.get("delivery")
    parsed_delivery = _parse_delivery(delivery) if delivery is not None else None
    present = frozenset(k for k in RECEIVER_FIELDS if body.get(k) is not None)
    return ReceiverFields(requested, parsed_delivery, description, present)


def _parse_delivery(raw: Any) -> Delivery:
    if not isinstance(raw, dict):
        raise InvalidRequest("delivery must be an object with a method")
    method = raw.get("method", raw.get("delivery_method"))
    if not isinstance(method, str) or not method:
        raise InvalidRequest("delivery.method must be a non-empty string")
    method = LEGACY_METHODS.get(method, method)
    url = raw.get("endpoint_url", raw.get("url"))
    if url is not None and not isinstance(url, str):
        raise InvalidRequest("delivery.endpoint_url must be a string")
    auth = raw.get("authorization_header")
    if auth is not None and (
        not isinstance(auth, str)
        or len(auth) > AUTH_HEADER_MAX
        or any(ord(c) < 32 or ord(c) == 127 for c in auth)
    ):
        # It is sent verbatim as a header (R-PUSH-1): no control characters, no header injection.
        raise InvalidRequest("delivery.authorization_header must be a printable single-line string")
    return Delivery(method=method, endpoint_url=url, authorization_header=auth)


def _event_uri(name_or_uri: str) -> str:
    """The current URI for a short name (``session-revoked``, as ``ssf-hub emit`` takes) or a
    legacy SSE URI (AMB-6); anything else as sent (an unknown URI is simply not delivered)."""
    found = CATALOGUE.find(name_or_uri)
    return found.uri if found is not None else name_or_uri


def events_delivered(supported: Collection[str], requested: Collection[str] | None) -> tuple[str, ...]:
    """supported ∩ requested, in the receiver's order; unknown URIs are ignored (R-STREAM-3).

    A request that names events but none the hub delivers is refused: it would make a stream
    that never receives anything, which a receiver notices only when a revocation is missed.
    """
    if not requested:
        return ()
    delivered = tuple(uri for uri in requested if uri in supported)
    if not delivered:
        raise InvalidRequest(
            "none of events_requested is delivered here; supported event types: " + ", ".join(supported)
        )
    return delivered


def new_stream(
    fields: ReceiverFields,
    *,
    stream_id: str,
    owner: str,
    iss: str,
    aud: str,
    policy: StreamPolicy,
    subject_mode: SubjectMode,
    poll_url: Callable[[str], str],
    now: float,
) -> Stream:
    """The stream a create request (R-STREAM-5, -6) produces."""
    delivery = _settle_delivery(fields.delivery, None, policy, stream_id, poll_url)
    return Stream(
        stream_id=stream_id,
        owner=owner,
        iss=iss,
        aud=aud,
        delivery=delivery,
        events_requested=fields.events_requested,
        events_delivered=events_delivered(policy.supported_events, fields.events_requested),
        description=fields.description,
        subject_mode=subject_mode,
        min_verification_interval=policy.min_verification_interval,
        inactivity_timeout=policy.inactivity_timeout,
        created_at=now,
        updated_at=now,
        last_activity_at=now,
    )


def _settle_delivery(
    asked: Delivery | None,
    current: Delivery | None,
    policy: StreamPolicy,
    stream_id: str,
    poll_url: Callable[[str], str],
) -> Delivery:
    # R-STREAM-6: no delivery means poll, with an endpoint_url the transmitter chooses.
    asked = asked or Delivery(method=POLL_METHOD)
    if current is not None and asked.method != current.method:
        # AMB-9: SSF does not define switching methods on an existing stream.
        raise InvalidRequest("delivery.method cannot be changed; create a new stream instead")
    if asked.method not in policy.delivery_methods:
        raise InvalidRequest(
            f"delivery method {asked.method} is not supported here "
            f"(supported: {', '.join(policy.delivery_methods)})"
        )
    if asked.method == POLL_METHOD:
        url = poll_url(stream_id)
        if asked.endpoint_url is not None and asked.endpoint_url != url:
            # endpoint_url is transmitter-supplied for poll (R-STREAM-3).
            raise InvalidRequest("delivery.endpoint_url is chosen by the transmitter for poll streams")
        if asked.authorization_header is not None:
            raise InvalidRequest("delivery.authorization_header applies to push streams only")
        return Delivery(method=POLL_METHOD, endpoint_url=url)
    if not asked.endpoint_url:
        raise InvalidRequest("push delivery needs delivery.endpoint_url")
    parts = parse_url(asked.endpoint_url, what="delivery.endpoint_url")
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidRequest("delivery.endpoint_url must be an absolute http(s) URL")
    return asked


def apply_update(
    stream: Stream,
    body: Any,
    *,
    replace_all: bool,
    policy: StreamPolicy,
    poll_url: Callable[[str], str],
    now: float,
) -> Stream:
    """PATCH (``replace_all=False``, R-STREAM-10) or PUT (``replace_all=True``, R-STREAM-11)."""
    fields = parse_receiver_fields(body)
    check_transmitter_fields(stream, body, policy)
    if replace_all:
        requested = fields.events_requested
        description = fields.description
        delivery_ask = fields.delivery
    else:
        present = fields.present
        requested = fields.events_requested if "events_requested" in present else stream.events_requested
        description = fields.description if "description" in present else stream.description
        delivery_ask = fields.delivery if "delivery" in present else stream.delivery
    delivery = _settle_delivery(delivery_ask, stream.delivery, policy, stream.stream_id, poll_url)
    return replace(
        stream,
        delivery=delivery,
        events_requested=requested,
        events_delivered=events_delivered(policy.supported_events, requested),
        description=description,
        updated_at=now,
        last_activity_at=now,
    )


def check_transmitter_fields(stream: Stream, body: Mapping[str, Any], policy: StreamPolicy) -> None:
    """Transmitter-supplied values MAY be sent but MUST equal the current ones (R-STREAM-10)."""
    current = stream_config(stream, policy.supported_events)
    for name in TRANSMITTER_FIELDS:
        if name not in body or body[name] is None:
            continue
        sent, have = body[name], current.get(name)
        if isinstance(have, list) and isinstance(sent, list):
            equal = sorted(map(str, sent)) == sorted(map(str, have))
        elif name == "aud" and isinstance(sent, list):
            equal = sent == [have]
        else:
            equal = sent == have
        if not equal:
            raise InvalidRequest(f"{name} is set by the transmitter and cannot be changed")


def stream_config(stream: Stream, supported_events: Collection[str]) -> dict[str, Any]:
    """The stream configuration object of SSF 1.0 §8.1.1 as the receiver sees it."""
    out: dict[str, Any] = {
        "stream_id": stream.stream_id,
        "iss": stream.iss,
        "aud": stream.aud,
        "delivery": stream.delivery.as_dict(),
        "events_supported": list(supported_events),
        "events_delivered": list(stream.events_delivered),
    }
    if stream.events_requested is not None:
        out["events_requested"] = list(stream.events_requested)
    if stream.description is not None:
        out["description"] = stream.description
    out["min_verification_interval"] = stream.min_verification_interval
    if stream.inactivity_timeout is not None:
        out["inactivity_timeout"] = stream.inactivity_timeout
    return out
