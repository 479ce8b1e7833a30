"""RFC 8936 poll requests and responses (R-POLL-1..8), without the waiting part."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.core.model import QueuedSet
from hub.errors import InvalidRequest

MAX_ACKS = 10_000  # one poll may acknowledge at most this many SETs


@dataclass(frozen=True, slots=True)
class PollRequest:
    max_events: int
    return_immediately: bool
    ack: tuple[str, ...]
    set_errs: dict[str, tuple[str, str]]


def parse_poll_request(body: Any, *, default_max: int, limit: int) -> PollRequest:
    """Validate a poll body; every member is optional (R-POLL-2)."""
    if not isinstance(body, dict):
        raise InvalidRequest("the poll request must be a JSON object")
    max_events = body.get("maxEvents", default_max)
    if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0:
        raise InvalidRequest("maxEvents must be a non-negative integer")
    # The transmitter SHOULD NOT exceed maxEvents; it may return fewer (our cap).
    max_events = min(max_events, limit)
    ret = body.get("returnImmediately", False)
    if not isinstance(ret, bool):
        raise InvalidRequest("returnImmediately must be a boolean")
    ack = body.get("ack", [])
    if not isinstance(ack, list) or not all(isinstance(j, str) for j in ack):
        raise InvalidRequest("ack must be an array of jti strings")
    if len(ack) > MAX_ACKS:
        raise InvalidRequest(f"at most {MAX_ACKS} SETs can be acknowledged in one request")
    raw_errs = body.get("setErrs", {})
    if not isinstance(raw_errs, dict):
        raise InvalidRequest("setErrs must be an object mapping jti to an error")
    if len(raw_errs) > MAX_ACKS:
        raise InvalidRequest(f"at most {MAX_ACKS} setErrs can be reported in one request")
    errs: dict[str, tuple[str, str]] = {}
    for jti, value in raw_errs.items():
        if not isinstance(value, dict) or not isinstance(value.get("err"), str):
            raise InvalidRequest(f"setErrs[{jti}] must be an object with an err string")
        desc = value.get("description", "")
        if not isinstance(desc, str):
            raise InvalidRequest(f"setErrs[{jti}].description must be a string")
        errs[jti] = (value["err"][:100], desc[:1000])
    return PollRequest(max_events, ret, tuple(dict.fromkeys(ack)), errs)


def poll_response(items: Sequence[QueuedSet], more_available: bool) -> dict[str, Any]:
    """``sets`` maps jti to the compact SET; ``moreAvailable`` only when true (R-POLL-3)."""
    out: dict[str, Any] = {"sets": {item.jti: item.set_jwt for item in items}}
    if more_available:
        out["moreAvailable"] = True
    return out
