"""Stream configurations and statuses as a transmitter returns them, and delivery objects (pure).

:class:`StreamConfig` reads a stream configuration (SSF 1.0 §8.1.1; R-STREAM-*), tolerating
the older ``delivery_method``/``url`` names (AMB-5); :func:`poll_delivery` and
:func:`push_delivery` build the ``delivery`` object of a create or update request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from receivers.discovery import POLL_METHOD, PUSH_METHOD
from receivers.errors import TransmitterError

__all__ = ["StreamConfig", "StreamStatus", "parse_status", "poll_delivery", "push_delivery"]


def poll_delivery() -> dict[str, Any]:
    """RFC 8936 poll; the transmitter picks the ``endpoint_url`` (R-STREAM-3)."""
    return {"method": POLL_METHOD}


def push_delivery(endpoint_url: str, authorization_header: str | None = None) -> dict[str, Any]:
    """RFC 8935 push to ``endpoint_url``; the transmitter sends ``authorization_header`` verbatim."""
    out: dict[str, Any] = {"method": PUSH_METHOD, "endpoint_url": endpoint_url}
    if authorization_header is not None:
        out["authorization_header"] = authorization_header
    return out


@dataclass(frozen=True)
class StreamConfig:
    stream_id: str
    iss: str
    aud: tuple[str, ...]
    delivery: Mapping[str, Any]
    events_delivered: tuple[str, ...] = ()
    events_requested: tuple[str, ...] | None = None
    events_supported: tuple[str, ...] | None = None
    description: str | None = None
    min_verification_interval: int | None = None
    inactivity_timeout: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def delivery_method(self) -> str | None:
        method = self.delivery.get("method", self.delivery.get("delivery_method"))
        return method if isinstance(method, str) else None

    @property
    def endpoint_url(self) -> str | None:
        url = self.delivery.get("endpoint_url", self.delivery.get("url"))  # AMB-5
        return url if isinstance(url, str) else None

    @classmethod
    def from_json(cls, doc: Any) -> StreamConfig:
        if not isinstance(doc, Mapping):
            raise TransmitterError(200, "invalid_response", "a stream configuration must be a JSON object")
        stream_id, iss, aud = doc.get("stream_id"), doc.get("iss"), doc.get("aud")
        auds = [aud] if isinstance(aud, str) else aud
        if not isinstance(stream_id, str) or not isinstance(iss, str) or not isinstance(auds, list):
            raise TransmitterError(
                200, "invalid_response", "stream configuration lacks stream_id, iss or aud"
            )

        def strings(name: str) -> tuple[str, ...] | None:
            value = doc.get(name)
            return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else None

        interval, timeout = doc.get("min_verification_interval"), doc.get("inactivity_timeout")
        return cls(
            stream_id=stream_id,
            iss=iss,
            aud=tuple(str(a) for a in auds),
            delivery=dict(doc.get("delivery") or {}),
            events_delivered=strings("events_delivered") or (),
            events_requested=strings("events_requested"),
            events_supported=strings("events_supported"),
            description=doc.get("description") if isinstance(doc.get("description"), str) else None,
            min_verification_interval=interval if isinstance(interval, int) else None,
            inactivity_timeout=timeout if isinstance(timeout, int) else None,
            raw=dict(doc),
        )


@dataclass(frozen=True)
class StreamStatus:
    stream_id: str
    status: str
    reason: str | None = None


def parse_status(doc: Any) -> StreamStatus:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("status"), str):
        raise TransmitterError(200, "invalid_response", "status response lacks status")
    reason = doc.get("reason")
    return StreamStatus(
        str(doc.get("stream_id", "")), doc["status"], reason if isinstance(reason, str) else None
    )
