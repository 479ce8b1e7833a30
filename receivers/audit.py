"""Structured audit records of every remediation.

Each record says what was done (``action``), because of which SET (``jti``, ``txn``, ``iss``,
``event_type``), to whom (``subject``) and the rest in ``detail`` — for a dropped token the
cache name and the token's fingerprint (never the token, R-SEC-11), for a refused request the
method, path and status. So "which agent stopped using which credential because of which IdP
event" is one filter away.

Actions: ``access_revoked`` (a revocation recorded), ``token_dropped``, ``request_refused``,
``policy_changed`` (a subject's decision changed), ``event_ignored`` (a SET acknowledged without
action, e.g. an unknown event type), ``event_stale`` (a policy event older than the facts it
would change: nothing changed).

Records go to the ``receivers.audit`` logger as one JSON object per line (message) with the
record also in ``extra={"audit": ...}``, to an in-memory ring of the last ``keep`` records,
and to any sinks you add (a SIEM shipper, a database writer).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from receivers.events import ReceivedEvent
from receivers.subjects import Subject

__all__ = ["AuditLog", "AuditRecord"]

ACCESS_REVOKED = "access_revoked"
TOKEN_DROPPED = "token_dropped"
REQUEST_REFUSED = "request_refused"
POLICY_CHANGED = "policy_changed"
EVENT_IGNORED = "event_ignored"
EVENT_STALE = "event_stale"


@dataclass(frozen=True)
class AuditRecord:
    action: str
    at: float
    jti: str | None
    txn: str | None
    iss: str | None
    event_type: str | None
    subject: Subject | None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_event(
        cls, action: str, event: ReceivedEvent, at: float, subject: Subject | None = None, **detail: Any
    ) -> AuditRecord:
        return cls(
            action=action,
            at=at,
            jti=event.jti,
            txn=event.txn,
            iss=event.iss,
            event_type=event.event_type,
            subject=event.subject if subject is None else subject,
            detail=detail,
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["subject"] = dict(self.subject) if self.subject is not None else None
        return out


class AuditLog:
    """Where audit records go: the ``receivers.audit`` logger, a ring of the last ``keep``, your sinks."""

    def __init__(
        self,
        *,
        keep: int = 1000,
        logger: logging.Logger | None = None,
        sinks: Iterable[Callable[[AuditRecord], None]] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records: deque[AuditRecord] = deque(maxlen=keep)
        self.logger = logger or logging.getLogger("receivers.audit")
        self.sinks = list(sinks)
        self.clock = clock

    def add_sink(self, sink: Callable[[AuditRecord], None]) -> None:
        self.sinks.append(sink)

    def record(self, record: AuditRecord) -> None:
        self.records.append(record)
        if self.logger.isEnabledFor(logging.INFO):
            data = record.as_dict()
            self.logger.info(json.dumps(data, default=str, sort_keys=True), extra={"audit": data})
        for sink in self.sinks:
            try:
                sink(record)
            except Exception:  # a broken sink must not stop remediation
                self.logger.exception("audit sink %r failed", sink)

    def find(self, action: str | None = None, *, jti: str | None = None) -> list[AuditRecord]:
        return [
            r
            for r in self.records
            if (action is None or r.action == action) and (jti is None or r.jti == jti)
        ]
