"""Stream status requests (R-STATUS-1..7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.core.model import Status, Stream
from hub.errors import InvalidRequest

REASON_MAX = 1000


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    stream_id: str
    status: Status
    reason: str | None


def parse_status_update(body: Any) -> StatusUpdate:
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    stream_id = body.get("stream_id")
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidRequest("stream_id is required")
    raw = body.get("status")
    try:
        status = Status(raw if isinstance(raw, str) else "")
    except ValueError:
        raise InvalidRequest("status must be one of enabled, paused, disabled") from None
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidRequest("reason must be a string")
    return StatusUpdate(stream_id, status, reason[:REASON_MAX] if reason else None)


def status_object(stream: Stream) -> dict[str, Any]:
    out: dict[str, Any] = {"stream_id": stream.stream_id, "status": stream.status.value}
    if stream.status_reason:
        out["reason"] = stream.status_reason
    return out


def must_announce(old: Status, new: Status, *, by_transmitter: bool) -> bool:
    """R-STATUS-7: a change the transmitter makes on its own is announced with stream-updated."""
    return by_transmitter and old is not new
