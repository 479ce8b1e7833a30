"""The one storage contract the hub needs; SQLite and Redis both implement it.

All methods are coroutines so a network store fits; an implementation must make
every write durable before its coroutine returns (the caller answers 2xx next).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from hub.core.health import DeliveryHealth
from hub.core.issuers import TrustedIssuer
from hub.core.model import (
    Attempt,
    AuditRecord,
    DeliveryState,
    IngestReceipt,
    QueuedSet,
    QueueStats,
    RemediationReceipt,
    SetTrace,
    Stream,
    SubjectEntry,
)
from hub.core.upstreams import Upstream, UpstreamState
from hub.store.sealing import Sealer


def lease_holder() -> str:
    """A new lease holder name, ``<pid>.<random>``: several hub processes on one SQLite file
    free the leases of a process that is gone by its pid (``serve --processes``)."""
    return f"{os.getpid()}.{uuid.uuid4().hex}"


@runtime_checkable
class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """True when the store answers (used by ``/healthz``)."""
        ...

    # -- streams -------------------------------------------------------------------------------
    async def create_stream(self, stream: Stream) -> None:
        """Insert a new stream; the caller guarantees a fresh ``stream_id``."""
        ...

    async def get_stream(self, stream_id: str) -> Stream | None: ...

    async def get_streams(self, stream_ids: Iterable[str]) -> dict[str, Stream]:
        """The streams that exist among ``stream_ids``, by id."""
        ...

    async def list_streams(self, owner: str | None = None) -> list[Stream]:
        """Streams of one owner (all streams when ``owner`` is None), oldest first."""
        ...

    async def save_stream(self, stream: Stream) -> None:
        """Overwrite an existing stream's record (config, status, timestamps)."""
        ...

    async def delete_stream(self, stream_id: str) -> bool:
        """Delete the stream with its subjects and queued SETs; False if it did not exist."""
        ...

    # -- subjects ------------------------------------------------------------------------------
    async def put_subject(self, entry: SubjectEntry, index_keys: Sequence[str]) -> None:
        """Add or replace the subject ``entry.key`` on its stream, findable by ``index_keys``."""
        ...

    async def remove_subject(self, stream_id: str, key: str) -> bool: ...

    async def list_subjects(self, stream_id: str) -> list[SubjectEntry]: ...

    async def find_subjects(self, index_keys: Iterable[str]) -> list[SubjectEntry]:
        """Every registered subject (any stream) filed under at least one of ``index_keys``."""
        ...

    async def streams_with_all_subjects(self) -> list[str]:
        """Ids of the streams whose subject mode is ALL."""
        ...

    # -- per-stream queues ---------------------------------------------------------------------
    async def enqueue(self, items: Sequence[QueuedSet]) -> None:
        """Append SETs to their streams' queues: each stream's atomically (all of its SETs
        or none). SQLite stores the whole batch or nothing; Redis, whose streams may live on
        different cluster nodes, may have queued some streams' SETs when it raises."""
        ...

    async def pending(self, stream_id: str, limit: int, *, control_only: bool = False) -> list[QueuedSet]:
        """The oldest ``limit`` unacknowledged SETs of a stream, in queue order."""
        ...

    async def count_pending(self, stream_id: str, *, control_only: bool = False) -> int: ...

    async def complete(
        self,
        stream_id: str,
        jtis: Iterable[str],
        *,
        at: float,
        state: DeliveryState = DeliveryState.DELIVERED,
        attempts: Sequence[Attempt] = (),
    ) -> int:
        """Take pending SETs off the queue as ``state``, logging the push ``attempts`` that
        finished them in the same transaction; unknown or finished ``jti``s are ignored.
        Returns how many left the queue."""
        ...

    async def reschedule_pending(self, stream_id: str, *, next_attempt_at: float) -> int:
        """Make a stream's pending SETs due at ``next_attempt_at`` (a stream enabled again)."""
        ...

    async def purge_pending(self, stream_id: str, *, at: float, keep_control: bool = True) -> int:
        """Drop a stream's queued SETs (stream disabled); returns how many were dropped."""
        ...

    async def streams_with_pending(self) -> list[str]:
        """Ids of the streams with at least one pending SET."""
        ...

    async def queue_stats(self, stream_id: str) -> QueueStats: ...

    async def delete_finished(self, before: float) -> int:
        """Forget SETs that left the queue before ``before`` (retention); returns the count."""
        ...

    # -- push delivery -------------------------------------------------------------------------
    async def record_attempt(
        self, attempt: Attempt, *, next_attempt_at: float, last_error: str | None
    ) -> None:
        """Log a push attempt and schedule the SET's next one (it stays pending)."""
        ...

    async def trace(self, ident: str) -> list[SetTrace]:
        """The SETs whose ``jti`` or ``txn`` is ``ident``, with every push attempt, oldest first."""
        ...

    async def record_receipts(self, stream_id: str, receipts: Sequence[RemediationReceipt]) -> int:
        """Keep what a receiver did with SETs of its stream (remediation receipts) with their
        trace; receipts for a ``jti`` the stream never held are skipped. Returns how many were
        kept. They go when their SET goes (retention, stream deleted)."""
        ...

    async def get_health(self, stream_id: str) -> DeliveryHealth: ...

    async def save_health(self, stream_id: str, health: DeliveryHealth) -> None: ...

    async def acquire_lease(self, name: str, holder: str, *, now: float, ttl: float) -> bool:
        """Take or renew the named lease for ``holder``; False while someone else holds it."""
        ...

    async def release_lease(self, name: str, holder: str) -> None: ...

    # -- records -------------------------------------------------------------------------------
    async def record_set_errors(
        self, stream_id: str, errors: Mapping[str, tuple[str, str]], at: float
    ) -> None:
        """Keep receiver-reported ``setErrs`` (jti -> (err, description)) for admins."""
        ...

    async def list_set_errors(self, stream_id: str, limit: int = 100) -> list[dict[str, object]]: ...

    def use_secrets(self, sealer: Sealer) -> None:
        """Seal receivers' credentials (push authorization_header, upstream bearer tokens) in
        stored records from now on; records stored before stay readable."""
        ...

    async def append_audit(self, record: AuditRecord) -> None: ...

    async def list_audit(
        self,
        stream_id: str | None = None,
        limit: int = 100,
        *,
        since: float | None = None,
        txn: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        """Newest first; every filter given must match (:meth:`AuditRecord.matches`)."""
        ...

    async def prune_audit(self, before: float) -> int:
        """Forget audit records older than ``before`` (retention); returns the count."""
        ...

    # -- upstream issuers and ingest (issue #4) --------------------------------------------------
    async def put_issuer(self, issuer: TrustedIssuer) -> None:
        """Add or replace the trusted issuer ``issuer.iss``; bumps :meth:`issuers_version`."""
        ...

    async def get_issuer(self, iss: str) -> TrustedIssuer | None: ...

    async def list_issuers(self) -> list[TrustedIssuer]:
        """Every trusted issuer, ordered by ``iss``."""
        ...

    async def remove_issuer(self, iss: str) -> bool:
        """Forget a trusted issuer (bumps :meth:`issuers_version`); False if it was not there."""
        ...

    async def issuers_version(self) -> int:
        """A number that changes whenever the issuer registry changes, in any process."""
        ...

    async def was_ingested(self, iss: str, jti: str, *, now: float) -> bool:
        """Whether an unexpired receipt for (``iss``, ``jti``) exists whose fan-out is complete
        (the cheap duplicate check; a receipt whose ingest crashed half-way says False, so
        the sender's retry reaches :meth:`ingest`, which finishes it)."""
        ...

    async def ingest(self, receipt: IngestReceipt, items: Sequence[QueuedSet]) -> bool:
        """Record ``receipt`` and queue ``items``, crash-safe: SQLite in one transaction,
        Redis as a saga (the receipt claimed with the items, then queued, then marked done).

        False when an unexpired receipt for the same (``iss``, ``jti``) exists: nothing of
        ``items`` is queued (on Redis, the SETs a crashed claimer stored are queued in their
        place, each once); True once both are durable. So a crash can neither lose the
        fan-out of an accepted SET nor queue a duplicate's. Items for deleted streams are
        dropped as in :meth:`enqueue`.
        """
        ...

    async def forget_ingested(self, before: float) -> int:
        """Delete receipts that expired before ``before`` (retention); returns the count."""
        ...

    # -- upstream subscriptions (issue #4) ---------------------------------------------------------
    async def add_upstream(self, upstream: Upstream) -> bool:
        """Store a new upstream with its state; False (nothing stored) if the id is taken."""
        ...

    async def get_upstream(self, upstream_id: str) -> Upstream | None: ...

    async def list_upstreams(self) -> list[Upstream]:
        """Every upstream, oldest first."""
        ...

    async def remove_upstream(self, upstream_id: str) -> bool:
        """Forget an upstream and its state; False if it was not there."""
        ...

    async def save_upstream_state(self, upstream_id: str, state: UpstreamState) -> bool:
        """Overwrite an upstream's state only (its configuration is the operator's); False,
        storing nothing, if the upstream was removed meanwhile."""
        ...
