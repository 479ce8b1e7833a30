"""SSF stream management (§8.1): the use cases behind the configuration, status,
subject and verification endpoints. Every call is scoped to the caller's ``sub``:
another receiver's stream is reported as not found (R-STREAM-1).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hub import logs, metrics
from hub.auth.tokens import LOCAL_ISSUER, Principal
from hub.core.model import PUSH_METHOD, AuditRecord, Status, Stream, SubjectEntry, SubjectMode
from hub.core.status import StatusUpdate, must_announce
from hub.core.streams import StreamPolicy, apply_update, new_stream, parse_receiver_fields
from hub.core.subjects import validate_subject
from hub.delivery.push.egress import EndpointGuard
from hub.errors import InvalidEvent, InvalidRequest, NotFound
from hub.store.base import Store
from hub.transmitter.issuing import Transmitter
from receivers.subjects import index_keys, subject_key

log = logging.getLogger("hub.streams")

ACTIVITY_WRITE_INTERVAL = 60.0  # record poll activity at most this often (one write, not one per poll)
STATE_MAX = 1024


def owner_of(principal: Principal) -> str:
    """Who owns a stream: the local token's ``sub``, or ``sub`` qualified by its issuer, so an
    external issuer cannot mint a ``sub`` that takes over another receiver's streams."""
    if principal.issuer == LOCAL_ISSUER:
        return principal.sub
    return f"{principal.sub}@{principal.issuer}"


class StreamManagement:
    def __init__(
        self,
        store: Store,
        transmitter: Transmitter,
        *,
        issuer: str,
        policy: StreamPolicy,
        poll_url: Callable[[str], str],
        default_subjects: SubjectMode,
        all_subjects_receivers: frozenset[str] = frozenset(),
        endpoint_guard: EndpointGuard | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint_guard = endpoint_guard
        self.store = store
        self.transmitter = transmitter
        self.issuer = issuer
        self.policy = policy
        self.poll_url = poll_url
        self.default_subjects = default_subjects
        self.all_subjects_receivers = all_subjects_receivers
        self.clock = clock

    # -- configuration endpoint (R-STREAM-5..13) ------------------------------------------------------
    async def create(self, principal: Principal, body: Any) -> Stream:
        fields = parse_receiver_fields(body)
        owner = owner_of(principal)
        if owner in self.all_subjects_receivers:
            mode = SubjectMode.ALL
        else:
            mode = self.default_subjects
        stream = new_stream(
            fields,
            stream_id=secrets.token_urlsafe(16),
            owner=owner,
            iss=self.issuer,
            aud=principal.client_id or principal.sub,
            policy=self.policy,
            subject_mode=mode,
            poll_url=self.poll_url,
            now=self.clock(),
        )
        await self._check_endpoint(stream)
        await self.store.create_stream(stream)
        await self._audit("stream_created", stream.stream_id, {"owner": owner})
        return stream

    async def get(self, principal: Principal, stream_id: Any, *, touch: bool = True) -> Stream:
        if not isinstance(stream_id, str) or not stream_id:
            raise InvalidRequest("stream_id is required")
        stream = await self.store.get_stream(stream_id)
        if stream is None or stream.owner != owner_of(principal):
            raise NotFound(f"no stream {stream_id} for this receiver")
        if touch:
            stream = await self.touch(stream)
        return stream

    async def list_streams(self, principal: Principal) -> list[Stream]:
        return await self.store.list_streams(owner_of(principal))

    async def update(self, principal: Principal, body: Any, *, replace_all: bool) -> Stream:
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        stream = await self.get(principal, body.get("stream_id"), touch=False)
        updated = apply_update(
            stream,
            body,
            replace_all=replace_all,
            policy=self.policy,
            poll_url=self.poll_url,
            now=self.clock(),
        )
        if updated.delivery != stream.delivery:
            await self._check_endpoint(updated)
        await self.store.save_stream(updated)
        return updated

    async def _check_endpoint(self, stream: Stream) -> None:
        """Refuse push endpoints that resolve to blocked addresses (checked again per attempt)."""
        url = stream.delivery.endpoint_url
        if stream.delivery.method == PUSH_METHOD and url and self.endpoint_guard is not None:
            await self.endpoint_guard.pin(url)

    async def delete(self, principal: Principal, stream_id: Any) -> None:
        stream = await self.get(principal, stream_id, touch=False)
        await self.store.delete_stream(stream.stream_id)  # its queued SETs go with it
        await self._audit("stream_deleted", stream.stream_id, {"owner": stream.owner})

    # -- status (R-STATUS-*) ------------------------------------------------------------------------
    async def set_status(
        self, stream: Stream, update: StatusUpdate, *, by_transmitter: bool, by: str = "hub"
    ) -> Stream:
        """Apply a status change. Changes the hub makes on its own are announced (R-STATUS-7):
        before stopping for paused/disabled, on re-enabling for enabled. ``by`` names who made
        it (a token ``sub``, or ``hub``) for the log line and the metric."""
        old = stream.status
        announce = must_announce(old, update.status, by_transmitter=by_transmitter)
        if announce and update.status is not Status.ENABLED:
            await self.transmitter.announce_status(stream, update.status, update.reason)
        now = self.clock()
        stream = replace(stream, status=update.status, status_reason=update.reason, updated_at=now)
        await self.store.save_stream(stream)
        if old is not update.status:
            metrics.STATUS_CHANGES.labels(update.status.value, "hub" if by == "hub" else "client").inc()
            detail = {
                "actor": by,
                "status": update.status.value,
                "previous": old.value,
                "reason": update.reason,
            }
            await self._audit("status_changed", stream.stream_id, detail)
            logs.event(
                log,
                logging.WARNING if by == "hub" else logging.INFO,
                "stream_status_changed",
                stream_id=stream.stream_id,
                status=update.status.value,
                previous=old.value,
                by=by,
                reason=update.reason,
            )
        if update.status is Status.DISABLED and old is not Status.DISABLED:
            # R-STATUS-6: a disabled stream keeps nothing for later.
            dropped = await self.store.purge_pending(stream.stream_id, at=now, keep_control=announce)
            await self._audit("events_dropped", stream.stream_id, {"count": dropped, "reason": "disabled"})
        reenabled = update.status is Status.ENABLED and old is not Status.ENABLED
        if reenabled and not announce:
            # An earlier pause/disable announcement still waiting (a push receiver that was
            # down) would now arrive after the held SETs and leave the receiver believing the
            # stream is stopped: follow it with the current status.
            announce = await self.store.count_pending(stream.stream_id, control_only=True) > 0
        if announce and update.status is Status.ENABLED:
            await self.transmitter.announce_status(stream, update.status, update.reason)
        if reenabled:
            # Held SETs go out now, in order; a retry backoff from before the pause is forgotten.
            await self.store.reschedule_pending(stream.stream_id, next_attempt_at=0.0)
            health = await self.store.get_health(stream.stream_id)
            await self.store.save_health(
                stream.stream_id, replace(health, failing_since=None, consecutive_failures=0)
            )
        # Enabled: held SETs are deliverable again. Paused or disabled: a push worker part-way
        # through a batch must stop now (R-STATUS-5), not after the batch.
        self.transmitter.signal.notify([stream.stream_id])
        await self._audit(
            "status_changed",
            stream.stream_id,
            {
                "from": old.value,
                "to": update.status.value,
                "by": "transmitter" if by_transmitter else "receiver",
            },
        )
        return stream

    async def pause_failing(self, stream: Stream, reason: str) -> None:
        """Push kept failing past the window: hold events (paused, not disabled), say so first."""
        current = await self.store.get_stream(stream.stream_id)
        if current is not None and current.status is Status.ENABLED:
            metrics.STREAM_AUTO_PAUSES.inc()
            await self.set_status(
                current, StatusUpdate(stream.stream_id, Status.PAUSED, reason[:200]), by_transmitter=True
            )

    # -- subjects (R-SUBJ-*) ------------------------------------------------------------------------
    async def add_subject(self, principal: Principal, body: Any) -> None:
        stream, subject = await self._subject_request(principal, body)
        verified = body.get("verified")
        if verified is not None and not isinstance(verified, bool):
            raise InvalidRequest("verified must be a boolean")
        entry = SubjectEntry(stream.stream_id, subject_key(subject), subject, excluded=False)
        await self.store.put_subject(entry, index_keys(subject))

    async def remove_subject(self, principal: Principal, body: Any) -> None:
        stream, subject = await self._subject_request(principal, body)
        key = subject_key(subject)
        if stream.subject_mode is SubjectMode.ALL:
            # Pruning an ALL stream: remember the exclusion (R-DISC-4 default_subjects).
            await self.store.put_subject(
                SubjectEntry(stream.stream_id, key, subject, excluded=True), index_keys(subject)
            )
        else:
            await self.store.remove_subject(stream.stream_id, key)  # unknown subject: still 204 (R-SUBJ-4)

    async def _subject_request(self, principal: Principal, body: Any) -> tuple[Stream, dict[str, Any]]:
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        if "subject" not in body:
            raise InvalidRequest("subject is required")
        try:
            subject = validate_subject(body["subject"])
        except InvalidEvent as exc:
            raise InvalidRequest(exc.description) from None
        stream = await self.get(principal, body.get("stream_id"))
        return stream, subject

    # -- verification (R-VERIFY-*) ------------------------------------------------------------------
    async def verify(self, principal: Principal, body: Any) -> None:
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        state = body.get("state")
        if state is not None and (not isinstance(state, str) or len(state) > STATE_MAX):
            raise InvalidRequest(f"state must be a string of at most {STATE_MAX} characters")
        stream = await self.get(principal, body.get("stream_id"), touch=False)
        await self.transmitter.request_verification(stream, state)

    # -- inactivity (R-STREAM-4) ----------------------------------------------------------------------
    async def touch(self, stream: Stream) -> Stream:
        """Restart the inactivity timer; written at most once a minute per stream."""
        now = self.clock()
        if now - stream.last_activity_at < ACTIVITY_WRITE_INTERVAL:
            return stream
        stream = replace(stream, last_activity_at=now)
        await self.store.save_stream(stream)
        return stream

    async def pause_inactive(self) -> list[str]:
        """Pause enabled streams idle past their ``inactivity_timeout``, announcing it first."""
        now = self.clock()
        paused = []
        for stream in await self.store.list_streams():
            timeout = stream.inactivity_timeout
            if timeout and stream.status is Status.ENABLED and now - stream.last_activity_at > timeout:
                update = StatusUpdate(stream.stream_id, Status.PAUSED, "inactivity_timeout")
                await self.set_status(stream, update, by_transmitter=True)
                paused.append(stream.stream_id)
        return paused

    async def _audit(self, kind: str, stream_id: str | None, detail: dict[str, Any]) -> None:
        await self.store.append_audit(
            AuditRecord(at=self.clock(), kind=kind, stream_id=stream_id, detail=detail)
        )
