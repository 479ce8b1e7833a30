"""Accepting one upstream SET: verify, read its dialect, de-duplicate, re-issue, store.

:meth:`IngestPipeline.accept` is the one entry point, used by ``POST /ssf/ingest`` (after the
bearer check) and by upstream subscriptions (for SETs they poll). In order, cheapest first:

1. ``iss`` read without trusting anything; an issuer not in the registry is refused before
   any key is fetched (``invalid_issuer``);
2. shape, ``typ``, the issuer's algorithm allow-list, ``crit`` (``invalid_request`` /
   ``invalid_key``), then the signature with the issuer's keys and the claims: ``aud`` names
   the hub, ``iat`` within the skew, no ``sub``/``exp`` (``invalid_key``, ``invalid_audience``,
   ``invalid_request``; R-SEC-1..3). Keys that cannot be looked up right now answer 503
   with ``Retry-After``, so the sender retries instead of dropping a revocation;
3. the dialect (:mod:`hub.core.dialects`) and the issuer's limits (``access_denied``); an
   optional event claim that does not fit is repaired (:mod:`hub.core.tolerance`) unless the
   issuer is ``strict``, and every repair is kept: in the :class:`IngestResult`, the audit
   record, ``ssf_hub_ingest_tolerated_total`` and one ``ingest_tolerated`` log line;
4. a duplicate (``iss``, ``jti``) is accepted and fans out nothing (R-SEC-3);
5. one SET per matching stream, signed by the hub with a new ``jti``, the upstream ``txn``
   (or ``jti``) as ``txn`` and the upstream ``iss``/``jti`` in :data:`UPSTREAM_CLAIM` (AMB-18),
   stored together with the receipt in one atomic ``Store.ingest``.

SSF stream events (verification, stream-updated, in every dialect) from an upstream are
stored as receipts, audited (``ingest_control``) and handed to the :data:`ControlListener`
callbacks (upstream subscriptions); they are never fanned out.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hub import logs, metrics
from hub.core.dialects import InboundEvent, InboundSet, read_inbound, upstream_claim
from hub.core.inputs import decode_json
from hub.core.issuers import TrustedIssuer
from hub.core.model import AuditRecord, IngestReceipt
from hub.core.tolerance import Change
from hub.errors import HubError, InvalidRequest, Unavailable
from hub.ingest.registry import IssuerRegistry
from hub.ingest.verifiers import IssuerVerifiers
from hub.store.base import Store
from hub.transmitter.issuing import FanOut, Transmitter, fan_out_detail
from receivers.errors import KeysUnavailable, SetError
from receivers.verify import MAX_SET_BYTES

log = logging.getLogger("hub.ingest")

ControlListener = Callable[[InboundSet], Awaitable[None]]
MAX_TXN_LENGTH = 256


class SetRefused(HubError):
    """An upstream SET refused with an RFC 8935 error code (R-PUSH-5, R-PUSH-6): 400."""

    status_code = 400


def refused(err: str, description: str) -> SetRefused:
    return SetRefused(description, err=err)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What became of one accepted upstream SET."""

    iss: str
    jti: str
    txn: str  # the txn every re-issued SET carries
    duplicate: bool  # an earlier copy was accepted; nothing was queued this time
    sets: tuple[tuple[str, str], ...]  # (stream_id, jti) of every re-issued SET
    event_types: tuple[str, ...]  # after dialect mapping
    tolerated: tuple[Change, ...] = ()  # the repairs made to optional claims (hub.core.tolerance)


AcceptedListener = Callable[[IngestResult], None]


class IngestPipeline:
    def __init__(
        self,
        store: Store,
        registry: IssuerRegistry,
        verifiers: IssuerVerifiers,
        transmitter: Transmitter,
        *,
        dedup_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.registry = registry
        self.verifiers = verifiers
        self.transmitter = transmitter
        self.dedup_seconds = dedup_seconds
        self.clock = clock
        self._control_listeners: list[ControlListener] = []
        self._accepted_listeners: list[AcceptedListener] = []

    def on_control_event(self, listener: ControlListener) -> None:
        """Call ``listener`` with every accepted, new verification or stream-updated SET."""
        self._control_listeners.append(listener)

    def on_accepted(self, listener: AcceptedListener) -> None:
        """Call ``listener`` with every new SET accepted (upstream subscriptions note its time)."""
        self._accepted_listeners.append(listener)

    async def accept(self, token: str | bytes) -> IngestResult:
        """Verify and store one compact SET; returns once everything it caused is durable.

        Raises :class:`SetRefused` (400 with ``err``), :class:`~hub.errors.Unavailable` (keys
        or store not reachable now: retry later).
        """
        issuer, inbound = await self._verify(token)
        # Stream events (verification, stream-updated) are about the upstream stream itself:
        # always allowed, like they need no events_requested entry (R-SSFEV-3).
        routable = [event for event in inbound.events if event.event_type.family != "ssf"]
        for event in routable:
            if not issuer.may_send(event.uri):
                raise refused("access_denied", f"issuer may not send {event.event_type.name} events")
        if routable and not issuer.authoritative_for(inbound.subject):
            raise refused("access_denied", "issuer is not authoritative for this subject")
        txn = inbound.correlation_txn
        if len(txn) > MAX_TXN_LENGTH:
            raise refused("invalid_request", f"txn (or jti used as txn) exceeds {MAX_TXN_LENGTH} characters")

        now = self.clock()
        event_types = tuple(event.uri for event in inbound.events)
        tolerated = inbound.tolerated
        if await self.store.was_ingested(inbound.iss, inbound.jti, now=now):
            return IngestResult(inbound.iss, inbound.jti, txn, True, (), event_types, tolerated)
        plans = await self._fan_out(inbound, routable, txn)
        receipt = IngestReceipt(inbound.iss, inbound.jti, now, now + self.dedup_seconds, txn)
        items = [item for plan in plans for item in plan.items]
        if not await self.store.ingest(receipt, items):  # a concurrent copy won the race
            return IngestResult(inbound.iss, inbound.jti, txn, True, (), event_types, tolerated)
        await self.transmitter.settle(plans)
        for plan, event in zip(plans, routable, strict=True):
            detail = fan_out_detail(plan, actor=inbound.iss, upstream_jti=inbound.jti)
            await self._audit(now, "ingest_accepted", detail, event)
        for event in inbound.events:
            if event.event_type.family == "ssf":  # no fan-out, so no ingest_accepted record
                detail = {"actor": inbound.iss, "upstream_jti": inbound.jti, "txn": txn, "event": event.uri}
                detail |= {"streams": 0, "stream_ids": []}  # the shape of ingest_accepted (trace reads it)
                await self._audit(now, "ingest_control", detail, event)
        _report_tolerated(inbound, txn)
        await self._tell_control_listeners(inbound)
        sets = tuple(pair for plan in plans for pair in plan.sets)
        result = IngestResult(inbound.iss, inbound.jti, txn, False, sets, event_types, tolerated)
        for listener in self._accepted_listeners:
            listener(result)
        return result

    async def _verify(self, token: str | bytes) -> tuple[TrustedIssuer, InboundSet]:
        iss = _unverified_issuer(token)
        issuer = await self.registry.get(iss)
        if issuer is None:
            raise refused("invalid_issuer", f"issuer {iss[:200]!r} is not trusted by this hub")
        try:
            checks = self.verifiers.for_issuer(issuer)
        except ValueError as exc:  # a registered inline JWK Set none of whose keys imports
            raise refused("invalid_key", f"the issuer's registered keys are unusable: {exc}") from None
        try:
            parsed = checks.verifier.parse(token)
            keys = await checks.keys.keys_for(parsed.kid)
            received = checks.verifier.verify(parsed, keys)
        except SetError as exc:
            raise refused(exc.err, exc.description) from None
        except KeysUnavailable as exc:
            raise Unavailable(
                f"the issuer's keys cannot be fetched now: {exc}", retry_after=max(1, round(exc.retry_after))
            ) from None
        return issuer, read_inbound(received.claims, strict=issuer.strict)

    async def _fan_out(self, inbound: InboundSet, events: list[InboundEvent], txn: str) -> list[FanOut]:
        extra = upstream_claim(inbound.iss, inbound.jti)
        return [
            await self.transmitter.fan_out(event.uri, inbound.subject, event.claims, txn=txn, extra=extra)
            for event in events
        ]

    async def _audit(self, now: float, kind: str, detail: dict[str, Any], event: InboundEvent) -> None:
        if event.tolerated:
            detail = {**detail, "tolerated": [change.as_dict() for change in event.tolerated]}
        await self.store.append_audit(AuditRecord(at=now, kind=kind, stream_id=None, detail=detail))

    async def _tell_control_listeners(self, inbound: InboundSet) -> None:
        if not any(event.event_type.family == "ssf" for event in inbound.events):
            return
        for listener in self._control_listeners:
            try:
                await listener(inbound)
            except Exception:  # the SET is stored and acknowledged; a listener bug must not undo that
                log.exception("control-event listener failed for %s %s", inbound.iss, inbound.jti)


def _report_tolerated(inbound: InboundSet, txn: str) -> None:
    """Count and log the repairs made to a newly accepted SET (the issuer is registered, so it
    is a bounded label; event names and actions come from the catalogue and the code)."""
    if not inbound.tolerated:
        return
    for change in inbound.tolerated:
        metrics.INGEST_TOLERATED.labels(inbound.iss, change.event, change.action).inc()
    logs.event(
        log,
        logging.WARNING,
        "ingest_tolerated",
        issuer=inbound.iss,
        jti=inbound.jti,
        txn=txn,
        changes=tolerated_summary(inbound.tolerated),
    )


def tolerated_summary(changes: tuple[Change, ...]) -> str:
    """``event.member=action`` for each repair, comma-separated (log lines, response header)."""
    return ", ".join(f"{change.event}.{change.member}={change.action}" for change in changes)


def claimed_issuer(token: str | bytes) -> str | None:
    """The ``iss`` a SET claims, unverified, or None when it names none (for logs and metrics)."""
    try:
        return _unverified_issuer(token)
    except HubError:
        return None


def _unverified_issuer(token: str | bytes) -> str:
    """The ``iss`` of a compact JWS, read without verifying anything (to pick its keys)."""
    raw = token.encode() if isinstance(token, str) else bytes(token)
    raw = raw.strip()
    if not raw or len(raw) > MAX_SET_BYTES:
        raise InvalidRequest(f"the body is not a SET of at most {MAX_SET_BYTES} bytes")
    parts = raw.split(b".")
    if len(parts) != 3:
        raise InvalidRequest("the body is not a compact JWS (three base64url parts)")
    try:
        decoded = base64.urlsafe_b64decode(parts[1] + b"=" * (-len(parts[1]) % 4))
    except (binascii.Error, ValueError):
        raise InvalidRequest("the SET payload is not base64url-encoded JSON") from None
    payload: Any = decode_json(decoded, what="the SET payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("iss"), str) or not payload["iss"]:
        raise InvalidRequest("the SET has no iss claim")
    iss: str = payload["iss"]
    return iss
