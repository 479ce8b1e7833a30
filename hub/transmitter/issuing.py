"""Issuing SETs: route an event, sign one SET per stream, queue them durably.

This is the only place that signs and queues; emits, verification requests and
stream-updated announcements all come through here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hub import metrics
from hub.core.events import resolve_event_type, validate_event
from hub.core.ids import UniqueIds
from hub.core.model import AuditRecord, QueuedSet, Status, Stream
from hub.core.routing import candidate_streams, route
from hub.core.secevent import build_set_claims
from hub.core.subjects import stream_subject, validate_subject
from hub.delivery.wakeup import QueueSignal
from hub.errors import InvalidEvent, InvalidRequest, TooManyRequests
from hub.keys.ring import SigningKeyRing
from hub.keys.signing import SetSigner
from hub.store.base import Store
from receivers.events import STREAM_UPDATED, VERIFICATION
from receivers.subjects import index_keys

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
class EmitRequest:
    """One event as an admin sends it (``POST /ssf/admin/events``), not yet checked."""

    event: str
    subject: Any
    claims: Any = None
    txn: str | None = None


@dataclass(frozen=True, slots=True)
class _Checked:
    """An event whose type, claims, subject and txn passed every check that needs no store."""

    event_uri: str
    subject: dict[str, Any]
    claims: dict[str, Any]
    txn: str | None
    now: float
    raw_subject: Any  # as the caller wrote it, for the audit


@dataclass(frozen=True, slots=True)
class FanOut:
    """The SETs one event becomes, signed but not yet queued, and the streams it skips."""

    event_uri: str
    txn: str
    items: tuple[QueuedSet, ...]
    dropped: tuple[str, ...]  # disabled streams that would have received it (R-STATUS-6)
    planned_at: float
    methods: Mapping[str, str] = field(default_factory=dict)  # stream_id -> "push" | "poll"

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
        actor: str = "hub",
        drill: bool = False,
    ) -> EmitResult:
        """``drill``: a security team's test signal (console drills), marked so in the audit."""
        checked = [self._check(EmitRequest(event, subject, claims, txn))]
        (result,) = await self._emit(checked, actor, extra, drill=drill)
        return result

    async def emit_many(self, requests: Sequence[EmitRequest], *, actor: str = "hub") -> list[EmitResult]:
        """Several events in one go, one result (and one ``txn``) per event, in order.

        Every event is checked before anything is routed: a bad one refuses the whole batch
        with an :class:`InvalidRequest` naming its index (``events[3]: ...``) and nothing is
        queued. The SETs of all events are then queued by one :meth:`Store.enqueue` (with
        SQLite one transaction: all or nothing; with Redis per stream, see ``enqueue``)."""
        checked = []
        for n, request in enumerate(requests):
            try:
                checked.append(self._check(request))
            except InvalidRequest as exc:
                raise type(exc)(f"events[{n}]: {exc.description}", err=exc.err) from None
        return await self._emit(checked, actor, None)

    async def _emit(
        self,
        checked: Sequence[_Checked],
        actor: str,
        extra: Mapping[str, Any] | None,
        *,
        drill: bool = False,
    ) -> list[EmitResult]:
        plans = await self._fan_out_checked(checked, extra)
        items = [item for plan in plans for item in plan.items]
        if items:
            await self.store.enqueue(items)
        await self.settle(plans)
        # Who emitted what, and where it went: traceable even when it reached no stream. The
        # records are written together (the SQLite store commits concurrent writes as one).
        marks = {"drill": True} if drill else {}
        await asyncio.gather(
            *(
                self._audit(
                    "event_emitted",
                    None,
                    fan_out_detail(plan, actor=actor, subject=c.raw_subject, **marks),
                    plan.planned_at,
                )
                for plan, c in zip(plans, checked, strict=True)
            )
        )
        return [EmitResult(plan.txn, plan.sets, plan.dropped) for plan in plans]

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
        (plan,) = await self._fan_out_checked([self._check(EmitRequest(event, subject, claims, txn))], extra)
        return plan

    def _check(self, request: EmitRequest) -> _Checked:
        """Everything about one event that needs no store: its type, claims, subject and txn."""
        event_type = resolve_event_type(request.event)
        if event_type.superseded_by:  # R-RISC-9: sessions-revoked goes out as CAEP session-revoked
            event_type = resolve_event_type(event_type.superseded_by)
        if event_type.family == "ssf":
            raise InvalidEvent(
                f"{event_type.name} events are stream-specific; use the verification or status API"
            )
        claims = {} if request.claims is None else request.claims
        if not isinstance(claims, dict):
            raise InvalidEvent("claims must be a JSON object")
        txn = request.txn
        if txn is not None and (not isinstance(txn, str) or not txn or len(txn) > 256):
            raise InvalidRequest("txn must be a non-empty string of at most 256 characters")
        subject = validate_subject(request.subject)
        now = self.clock()
        claims = dict(claims)
        claims.setdefault("event_timestamp", int(now))
        validate_event(event_type, claims, subject)
        return _Checked(event_type.uri, subject, claims, txn, now, request.subject)

    async def _fan_out_checked(
        self, checked: Sequence[_Checked], extra: Mapping[str, Any] | None
    ) -> list[FanOut]:
        """Route each checked event, then sign every SET of them all in one go."""
        all_mode = await self.store.streams_with_all_subjects()
        candidates = [
            candidate_streams(c.subject, await self.store.find_subjects(index_keys(c.subject)), all_mode)
            for c in checked
        ]
        wanted = {sid for ids in candidates for sid in ids}
        streams = await self.store.get_streams(wanted) if wanted else {}
        routes = []
        unsigned: list[_Unsigned] = []
        for c, ids in zip(checked, candidates, strict=True):
            routed = route(c.event_uri, [streams[sid] for sid in ids if sid in streams])
            txn = c.txn or self.new_id()
            unsigned.extend(
                _Unsigned.of(self, stream, c.event_uri, c.claims, c.subject, c.now, txn=txn, extra=extra)
                for stream in routed.deliver
            )
            routes.append((c, routed, txn))
        items = await self._issue(unsigned)
        plans, at = [], 0
        for c, routed, txn in routes:
            mine = items[at : at + len(routed.deliver)]
            at += len(routed.deliver)
            dropped = tuple(s.stream_id for s in routed.dropped)
            methods = {s.stream_id: metrics.method_label(s.delivery.method) for s in routed.deliver}
            plans.append(FanOut(c.event_uri, txn, mine, dropped, c.now, methods))
        return plans

    async def settle(self, plans: Iterable[FanOut]) -> None:
        """After the plans' SETs are durable: wake their deliverers, audit the skipped streams."""
        plans = list(plans)
        queued = {item.stream_id for plan in plans for item in plan.items}
        if queued:
            self.signal.notify(queued)
        for plan in plans:
            for item in plan.items:
                metrics.SETS_ISSUED.labels(plan.methods.get(item.stream_id, "other")).inc()
            if not plan.items and not plan.dropped:
                metrics.EMITS_UNROUTED.inc()
            for stream_id in plan.dropped:
                metrics.SETS_DROPPED.labels("stream_disabled").inc()
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
            metrics.SETS_DROPPED.labels("stream_disabled").inc()
            await self._audit("event_dropped", stream.stream_id, {"event": VERIFICATION}, now)
            return stream
        items = await self._issue(
            [_Unsigned.of(self, stream, VERIFICATION, claims, stream_subject(stream.stream_id), now)]
        )
        await self._queue(items, stream)
        return stream

    async def announce_status(self, stream: Stream, status: Status, reason: str | None) -> str:
        """Queue a stream-updated SET (R-SSFEV-2); deliverable even while paused."""
        now = self.clock()
        claims: dict[str, Any] = {"status": status.value}
        if reason:
            claims["reason"] = reason
        unsigned = _Unsigned.of(
            self, stream, STREAM_UPDATED, claims, stream_subject(stream.stream_id), now, control=True
        )
        await self._queue(await self._issue([unsigned]), stream)
        return unsigned.jti

    async def resign_retired(self, items: list[QueuedSet]) -> list[QueuedSet]:
        """``items`` with every SET whose key was retired at once re-signed by the active key,
        so a key compromise drops the leaked key without losing what was queued under it."""
        stale = [n for n, item in enumerate(items) if not self.keys.signed_by_ring(item.set_jwt)]
        if not stale:
            return items
        signed = await self.signer.sign_many([_payload(items[n].set_jwt) for n in stale])
        fresh = list(items)
        for n, jwt in zip(stale, signed, strict=True):
            fresh[n] = replace(items[n], set_jwt=jwt)
        return fresh

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

    async def _queue(self, items: Sequence[QueuedSet], stream: Stream) -> None:
        if not items:
            return
        await self.store.enqueue(items)
        self.signal.notify({item.stream_id for item in items})
        metrics.SETS_ISSUED.labels(metrics.method_label(stream.delivery.method)).inc(len(items))

    async def _audit(self, kind: str, stream_id: str | None, detail: dict[str, Any], now: float) -> None:
        await self.store.append_audit(AuditRecord(at=now, kind=kind, stream_id=stream_id, detail=detail))


def _payload(token: str) -> dict[str, Any]:
    """The claims of a SET this hub signed (read from its own queue, so not verified again)."""
    segment = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return claims


AUDITED_STREAM_IDS = 100  # a fan-out to more streams is audited with its count and the first ones


def fan_out_detail(plan: FanOut, **fields: Any) -> dict[str, Any]:
    """The audit detail of one routed event: txn, event, the streams it reached or skipped."""
    streams = [item.stream_id for item in plan.items]
    return {
        **fields,
        "txn": plan.txn,
        "event": plan.event_uri,
        "streams": len(streams),
        "stream_ids": streams[:AUDITED_STREAM_IDS],
        "dropped_streams": list(plan.dropped[:AUDITED_STREAM_IDS]),
    }


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
