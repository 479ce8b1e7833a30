"""Remediation receipts: a receiver tells the hub what it did with a SET (a hub extension).

SSF ends at delivery: the transmitter learns that a receiver took a SET (a push ``202`` or
a poll ``ack``), never whether the revoked session actually stopped working there. A
receipt closes that gap for revocation drills: ``POST /ssf/receipts`` with
``{"stream_id", "receipts": [{"jti", "action", "count"?, "at"?}]}``, where ``action`` is one
of :data:`ACTIONS`. The hub keeps receipts with the SET's delivery trace (same retention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hub.core.model import RemediationReceipt
from hub.errors import InvalidRequest

ACTIONS = ("token_dropped", "request_refused", "policy_denied", "ignored")
MAX_RECEIPTS_PER_CALL = 500
MAX_COUNT = 1_000_000_000
# A receiver's clock may be a little off; one far from the hub's is a bug worth refusing.
MAX_CLOCK_SKEW = 24 * 3600.0
_RECEIPT_FIELDS = {"jti", "action", "count", "at"}


@dataclass(frozen=True, slots=True)
class ReceiptBatch:
    stream_id: str
    receipts: tuple[RemediationReceipt, ...]


def parse_receipts(body: Any, *, now: float) -> ReceiptBatch:
    """A validated batch from a request body; :class:`InvalidRequest` naming the first problem."""
    if not isinstance(body, dict):
        raise InvalidRequest('the body is {"stream_id": "...", "receipts": [...]}')
    unknown = sorted(set(body) - {"stream_id", "receipts"})
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    stream_id = body.get("stream_id")
    if not isinstance(stream_id, str) or not stream_id:
        raise InvalidRequest("stream_id is required")
    items = body.get("receipts")
    if not isinstance(items, list) or not items:
        raise InvalidRequest("receipts must be a non-empty array")
    if len(items) > MAX_RECEIPTS_PER_CALL:
        raise InvalidRequest(f"at most {MAX_RECEIPTS_PER_CALL} receipts per call")
    return ReceiptBatch(stream_id, tuple(_receipt(stream_id, item, i, now) for i, item in enumerate(items)))


def _receipt(stream_id: str, item: Any, index: int, now: float) -> RemediationReceipt:
    where = f"receipts[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object")
    unknown = sorted(set(item) - _RECEIPT_FIELDS)
    if unknown:
        raise InvalidRequest(f"{where}: unknown field(s): {', '.join(unknown)}")
    jti = item.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidRequest(f"{where}.jti must be the SET's jti")
    action = item.get("action")
    if action not in ACTIONS:
        raise InvalidRequest(f"{where}.action must be one of {', '.join(ACTIONS)}")
    count = item.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
        raise InvalidRequest(f"{where}.count must be a whole number from 0")
    at = item.get("at", now)
    if not isinstance(at, int | float) or isinstance(at, bool) or abs(at - now) > MAX_CLOCK_SKEW:
        raise InvalidRequest(f"{where}.at must be a Unix time (seconds) within a day of the hub's clock")
    return RemediationReceipt(stream_id, jti, str(action), count, float(at), now)


def receipt_view(receipt: RemediationReceipt) -> dict[str, Any]:
    """The JSON shape of a stored receipt (trace API, console)."""
    return {
        "action": receipt.action,
        "count": receipt.count,
        "at": receipt.at,
        "received_at": receipt.received_at,
    }
