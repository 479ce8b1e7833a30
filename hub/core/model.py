"""The records the hub keeps: streams and queued SETs (shared by core, store and web)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

POLL_METHOD = "urn:ietf:rfc:8936"
PUSH_METHOD = "urn:ietf:rfc:8935"


class Status(enum.StrEnum):
    """Stream status (R-STATUS-1): enabled delivers, paused holds, disabled drops."""

    ENABLED = "enabled"
    PAUSED = "paused"
    DISABLED = "disabled"


class SubjectMode(enum.StrEnum):
    """`default_subjects` (R-DISC-4): ALL streams get every subject unless removed."""

    ALL = "ALL"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Delivery:
    method: str
    endpoint_url: str | None = None
    authorization_header: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.endpoint_url is not None:
            out["endpoint_url"] = self.endpoint_url
        if self.authorization_header is not None:
            out["authorization_header"] = self.authorization_header
        return out


@dataclass(frozen=True, slots=True)
class Stream:
    """One SSF stream as the hub stores it: the receiver-visible config plus hub state."""

    stream_id: str
    owner: str
    iss: str
    aud: str
    delivery: Delivery
    events_delivered: tuple[str, ...]
    events_requested: tuple[str, ...] | None = None
    description: str | None = None
    status: Status = Status.ENABLED
    status_reason: str | None = None
    subject_mode: SubjectMode = SubjectMode.NONE
    min_verification_interval: int = 0
    inactivity_timeout: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_activity_at: float = 0.0
    last_verification_at: float | None = None

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict for storage (round-trips through :meth:`from_record`)."""
        data = asdict(self)
        data["delivery"] = self.delivery.as_dict()
        data["status"] = self.status.value
        data["subject_mode"] = self.subject_mode.value
        data["events_delivered"] = list(self.events_delivered)
        data["events_requested"] = None if self.events_requested is None else list(self.events_requested)
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Stream:
        values = dict(data)
        values["delivery"] = Delivery(**values["delivery"])
        values["status"] = Status(values["status"])
        values["subject_mode"] = SubjectMode(values["subject_mode"])
        values["events_delivered"] = tuple(values["events_delivered"])
        req = values.get("events_requested")
        values["events_requested"] = None if req is None else tuple(req)
        return cls(**values)


class DeliveryState(enum.StrEnum):
    """Where a queued SET is: waiting, or finished one of three ways."""

    PENDING = "pending"
    DELIVERED = "delivered"  # pushed with a 2xx, or acknowledged by a poll (ack or setErrs)
    FAILED = "failed"  # the receiver refused it for good (RFC 8935 400 with a registered err)
    DROPPED = "dropped"  # the stream was disabled while it waited


@dataclass(frozen=True, slots=True)
class QueuedSet:
    """A signed SET waiting on one stream until it is acknowledged.

    ``control`` marks stream-updated SETs: R-STATUS-7 says they go out *before* the
    stream stops, so they are deliverable while the stream is paused. ``attempts`` and
    ``next_attempt_at`` belong to push delivery (retries resend this same SET).
    """

    stream_id: str
    jti: str
    set_jwt: str
    event_type: str
    txn: str | None = None
    control: bool = False
    queued_at: float = 0.0
    attempts: int = 0
    next_attempt_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One push attempt of one SET, for the delivery trace."""

    stream_id: str
    jti: str
    at: float
    outcome: str  # an OutcomeKind value
    status: int | None = None
    error: str | None = None
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class RemediationReceipt:
    """What a receiver reports it did with one SET it was sent (a hub extension, not SSF):
    ``action`` is one of :data:`hub.core.remediation.ACTIONS`, ``count`` how many tokens,
    requests or decisions it concerned, ``at`` the receiver's clock, ``received_at`` the hub's."""

    stream_id: str
    jti: str
    action: str
    count: int
    at: float
    received_at: float


@dataclass(frozen=True, slots=True)
class SetTrace:
    """Everything the hub knows about one SET it issued."""

    stream_id: str
    jti: str
    txn: str | None
    event_type: str
    state: DeliveryState
    queued_at: float
    done_at: float | None
    attempts: tuple[Attempt, ...] = ()
    last_error: str | None = None
    receipts: tuple[RemediationReceipt, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    oldest_queued_at: float | None


@dataclass(frozen=True, slots=True)
class SubjectEntry:
    """A subject registered on a stream (``excluded`` = removed from an ALL stream)."""

    stream_id: str
    key: str
    subject: dict[str, Any]
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One durable audit entry. ``detail`` carries ``actor`` (a token ``sub``, ``hub`` or an
    issuer) and ``txn`` where they apply; the audit API filters on both."""

    at: float
    kind: str
    stream_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def matches(
        self, *, since: float | None = None, txn: str | None = None, actor: str | None = None
    ) -> bool:
        return (
            (since is None or self.at >= since)
            and (txn is None or self.detail.get("txn") == txn)
            and (actor is None or self.detail.get("actor") == actor)
        )


@dataclass(frozen=True, slots=True)
class IngestReceipt:
    """An upstream SET the hub accepted, kept to refuse its duplicates (R-SET-2, R-SEC-3).

    Keyed by (``iss``, ``jti``); after ``expires_at`` the same pair counts as new again and
    the retention job forgets the receipt.
    """

    iss: str
    jti: str
    received_at: float
    expires_at: float
    txn: str | None = None
