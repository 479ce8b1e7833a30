"""Issuing SETs: route an event, sign one SET per stream, queue them durably.

This is the only place that signs and queues; emits, verification requests and
stream-updated announcements all come through here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from hub.core.events import CATALOGUE, STREAM_UPDATED_URI, VERIFICATION_URI
from hub.core.ids import UniqueIds
from hub.core.model import AuditRecord, QueuedSet, Status, Stream
from hub.core.routing import candidate_streams, route
from hub.core.secevent import build_set_claims
from hub.core.subjects import index_keys, stream_subject, validate_subject
from hub.errors import InvalidEvent, InvalidRequest, TooManyRequests
from hub.keys import SigningKeyRing
from hub.signing import SetSigner
from hub.store.base import Store
from hub.wakeup import QueueSignal

log = logging.getLogger("hub.transmitter")


@dataclass(frozen=True, slots=True)
class EmitResult:
    txn: str
    sets: tuple[tuple[str, str], ...]  # (stream_id, jti) per queued SET
    dropped: tuple[str, ...]  # disabled streams that would have received it

    def as_dict(self) -> dict[str, Any]:
        return {
            "txn": self.txn,
            "sets": [{"stream_id": sid, "jti": jti} for sid, jti in self.sets],
            "dropped_streams": list(self.dropped),
        }


@dataclass(frozen=True, slots=True)
class FanOut:
    """The SETs one event becomes, signed but not yet queued, and the streams it skips."""

    event_uri: str
    txn: str
    items: tuple[QueuedSet, ...]
    dropped: tuple[str, ...]  # disabled streams that would have received it (R-STATUS-6)
    planned_at: float

    @property
    def sets(self) -> tuple[tuple[str, str], ...]:
        return tuple((item.stream_id, item.jti) for item in self.items)


class Transmitter:
    def __init__(
        self,
        store: Store,
        keys: SigningKeyRing,
        signal: QueueSignal,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] | None = None,
        signer: SetSigner | None = None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.signal = signal
        self.clock = clock
        self.new_id = new_id or UniqueIds().next
        self.signer = signer or SetSigner(keys)

    # -- events from an admin (ssf-hub emit) or from ingest ------------------------------------------
    async def emit(
        self,
        event: str,
        subject: Any,
        claims: Any = None,
        *,
        txn: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> EmitResult:
        plan = await self.fan_out(event, subject, claims, txn=txn, extra=extra)
        if plan.items:
            await self.store.enqueue(plan.items)
        await self.settle([plan])
        return EmitResult(plan.txn, plan.sets, plan.dropped)

    async def fan_out(
        self,
        event: str,
        subject: Any,
        claims: Any = None,
        *,
        txn: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> FanOut:
        """Route one event and sign its SET for every matching stream, queuing nothing.

        The caller stores ``items`` (``Store.enqueue``, or ``Store.ingest`` with a receipt)
        and then calls :meth:`settle`.
        """
        event_type = CATALOGUE.resolve(event)
        if event_type.superseded_by:  # R-RISC-9: sessions-revoked goes out as CAEP session-revoked
            event_type = CATALOGUE.resolve(event_type.superseded_by)
        if event_type.family == "ssf":
            raise InvalidEvent(
                f"{event_type.name} events are stream-specific; use the verification or status API"
            )
        if claims is None:
            claims = {}
        if not isinstance(claims, dict):
            raise InvalidEvent("claims must be a JSON object")
        if txn is not None and (not isinstance(txn, str) or not txn or len(txn) > 256):
            raise InvalidRequest("txn must be a non-empty string of at most 256 characters")
        subject = validate_subject(subject)
        now = self.clock()
        claims = dict(claims)
        claims.setdefault("event_timestamp", int(now))
        event_type.validate(claims, subject)

        entries = await self.store.find_subjects(index_keys(subject))
        all_mode = await self.store.streams_with_all_subjects()
        stream_ids = candidate_streams(subject, entries, all_mode)
        streams = await self.store.get_streams(stream_ids) if stream_ids else {}
        routed = route(event_type.uri, streams.values())

        txn = txn or self.new_id()
        items = await self._issue(
            [
                _Unsigned.of(self, stream, event_type.uri, claims, subject, now, txn=txn, extra=extra)
                for stream in routed.deliver
            ]
        )
        return FanOut(event_type.uri, txn, items, tuple(s.stream_id for s in routed.dropped), now)

    async def settle(self, plans: Iterable[FanOut]) -> None:
        """After the plans' SETs are durable: wake their deliverers, audit the skipped streams."""
        plans = list(plans)
        queued = {item.stream_id for plan in plans for item in plan.items}
        if queued:
            self.signal.notify(queued)
        for plan in plans:
            for stream_id in plan.dropped:
                detail = {"txn": plan.txn, "event": plan.event_uri}
                await self._audit("event_dropped", stream_id, detail, plan.planned_at)

    # -- stream-specific SSF events ---------------------------------------------------------------------
    async def request_verification(self, stream: Stream, state: str | None) -> Stream:
        """R-VERIFY-1..4: queue a verification SET echoing ``state``; returns the updated stream."""
        now = self.clock()
        interval = stream.min_verification_interval
        if interval and stream.last_verification_at is not None:
            wait = stream.last_verification_at + interval - now
            if wait > 0:
                raise TooManyRequests(
                    f"verification requested within min_verification_interval ({interval} s)",
                    retry_after=max(1, int(wait + 0.999)),
                )
        stream = replace(stream, last_verification_at=now, last_activity_at=now)
        await self.store.save_stream(stream)
        claims = {} if state is None else {"state": state}
        if stream.status is Status.DISABLED:
            await self._audit("event_dropped", stream.stream_id, {"event": VERIFICATION_URI}, now)
            return stream
        items = await self._issue(
            [_Unsigned.of(self, stream, VERIFICATION_URI, claims, stream_subject(stream.stream_id), now)]
        )
        await self._queue(items)
        return stream

    async def announce_status(self, stream: Stream, status: Status, reason: str | None) -> str:
        """Queue a stream-updated SET (R-SSFEV-2); deliverable even while paused."""
        now = self.clock()
        claims: dict[str, Any] = {"status": status.value}
        if reason:
            claims["reason"] = reason
        unsigned = _Unsigned.of(
            self, stream, STREAM_UPDATED_URI, claims, stream_subject(stream.stream_id), now, control=True
        )
        await self._queue(await self._issue([unsigned]))
        return unsigned.jti

    # -- internals -----------------------------------------------------------------------------------
    async def _issue(self, unsigned: list[_Unsigned]) -> tuple[QueuedSet, ...]:
        """Sign every SET in one go: off the event loop when the signer has a process for it."""
        signed = await self.signer.sign_many([u.claims for u in unsigned])
        return tuple(
            QueuedSet(
                stream_id=u.stream_id,
                jti=u.jti,
                set_jwt=jwt,
                event_type=u.event_uri,
                txn=u.txn,
                control=u.control,
                queued_at=u.queued_at,
            )
            for u, jwt in zip(unsigned, signed, strict=True)
        )

    async def _queue(self, items: Sequence[QueuedSet]) -> None:
        if not items:
            return
        await self.store.enqueue(items)
        self.signal.notify({item.stream_id for item in items})

    async def _audit(self, kind: str, stream_id: str | None, detail: dict[str, Any], now: float) -> None:
        await self.store.append_audit(AuditRecord(at=now, kind=kind, stream_id=stream_id, detail=detail))


@dataclass(frozen=True, slots=True)
class _Unsigned:
    """One stream's SET before signing: its claims and what the queue keeps beside them."""

    stream_id: str
    jti: str
    claims: dict[str, Any]
    event_uri: str
    txn: str | None
    control: bool
    queued_at: float

    @classmethod
    def of(
        cls,
        transmitter: Transmitter,
        stream: Stream,
        event_uri: str,
        event_claims: Mapping[str, Any],
        subject: Mapping[str, Any],
        now: float,
        *,
        txn: str | None = None,
        control: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> _Unsigned:
        jti = transmitter.new_id()
        claims = build_set_claims(
            iss=stream.iss,
            aud=stream.aud,
            jti=jti,
            iat=int(now),
            event_uri=event_uri,
            event_claims=event_claims,
            sub_id=subject,
            txn=txn,
            extra=extra,
        )
        return cls(stream.stream_id, jti, claims, event_uri, txn, control, now)
