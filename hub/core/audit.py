"""The audit API's rules: reading a query (``since``, ``txn``, ``stream_id``, ``actor``,
``limit``) and the JSON a record is shown as. Pure; the store does the filtering."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.core.model import AuditRecord
from hub.errors import InvalidRequest

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class AuditQuery:
    since: float | None = None
    txn: str | None = None
    stream_id: str | None = None
    actor: str | None = None
    limit: int = DEFAULT_LIMIT


def parse_since(value: str) -> float:
    """Seconds since the epoch, or an ISO 8601 time (``2026-12-05T12:00:00Z``; UTC if no zone)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest("since must be seconds since the epoch or an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def audit_query(params: Mapping[str, str]) -> AuditQuery:
    unknown = sorted(set(params) - {"since", "txn", "stream_id", "actor", "limit"})
    if unknown:
        raise InvalidRequest(f"unknown query parameter(s): {', '.join(unknown)}")
    limit = DEFAULT_LIMIT
    if "limit" in params:
        if not params["limit"].isdigit() or not 1 <= int(params["limit"]) <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(params["limit"])
    since = parse_since(params["since"]) if "since" in params else None
    return AuditQuery(since, params.get("txn"), params.get("stream_id"), params.get("actor"), limit)


def audit_view(record: AuditRecord) -> dict[str, Any]:
    return {"at": record.at, "kind": record.kind, "stream_id": record.stream_id, **record.detail}
