"""One stream's receiving pipeline, shared by the push endpoint and the poll consumer.

``process(token)``: parse (no keys yet) → keys for the ``kid`` from the key source (refetched on
an unknown ``kid``) → signature and claims → de-duplicate by (``iss``, ``jti``) → verification
and stream-updated checks → dispatch. A refusal raises the
:class:`~receivers.errors.SetError` with its RFC 8935 code; anything else is accepted,
including:

- repeats (the same ``jti`` again): acknowledged again, acted on once (R-SEC-3); a SET issued
  before the de-duplicator's :meth:`~receivers.dedup.Deduplicator.horizon` is refused with
  ``invalid_request``, since a repeat of it could no longer be recognised. A SET is remembered
  only once every handler succeeded: when one fails, :class:`~receivers.dispatch.HandlerFailed`
  is raised (the poll consumer does not acknowledge it, the push endpoint answers ``500``) and
  the redelivered SET runs the handlers again;
- events about subjects this receiver removed, or never added: accepted and acted on — the
  transmitter may keep sending them for a while and they must not be reported as errors
  (R-SUBJ-6); a receiver that wants to ignore them can do so in its handlers;
- verification events without ``state`` and stream-updated events (R-VERIFY-5, R-SSFEV-2),
  in any order relative to other events (R-VERIFY-3);
- unknown event types: acknowledged, no handler runs (R-SET-15 spirit: ignore what you do
  not understand).

Refusals are counted (:attr:`Receiver.refusals`, by RFC 8935 code) and handed to the
``on_refusal`` callbacks: the transmitter learns of them, the app would not otherwise.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from receivers.dedup import Deduplicator
from receivers.dispatch import Dispatcher, HandlerFailed
from receivers.errors import InvalidRequest, SetError
from receivers.events import STREAM_UPDATED, ReceivedEvent
from receivers.jwks import KeySource
from receivers.stores import DedupStore, MemoryDedupStore
from receivers.verification import VerificationStates
from receivers.verify import SetVerifier

__all__ = ["ProcessResult", "Receiver", "RefusalListener"]

log = logging.getLogger("receivers.receiver")

RefusalListener = Callable[[SetError], None]


@dataclass(frozen=True)
class ProcessResult:
    event: ReceivedEvent
    duplicate: bool = False
    handler_failures: int = 0


class Receiver:
    """Verify, de-duplicate, check verification events, dispatch: one stream's pipeline."""

    def __init__(
        self,
        verifier: SetVerifier,
        keys: KeySource,
        *,
        dispatcher: Dispatcher | None = None,
        dedup: Deduplicator | DedupStore | None = None,
        states: VerificationStates | None = None,
        stream_id: str | None = None,
        on_refusal: RefusalListener | None = None,
    ) -> None:
        self.verifier = verifier
        self.keys = keys
        self.dispatcher = dispatcher if dispatcher is not None else Dispatcher()
        if dedup is None:
            dedup = Deduplicator(clock=verifier.clock)
        self.dedup: DedupStore = MemoryDedupStore(dedup) if isinstance(dedup, Deduplicator) else dedup
        self.states = states if states is not None else VerificationStates(clock=verifier.clock)
        self.stream_id = stream_id
        self.stream_status: str | None = None  # as last announced by stream-updated
        self.processed = 0
        self.duplicates = 0
        self.handler_failures = 0  # SETs left for redelivery because a handler failed
        self.refusals: Counter[str] = Counter()  # refused SETs by RFC 8935 code
        self.refusal_listeners: list[RefusalListener] = [on_refusal] if on_refusal else []

    @property
    def refused(self) -> int:
        return sum(self.refusals.values())

    async def validate(self, token: str | bytes) -> ReceivedEvent:
        """Signature and claims only: no de-duplication, no state check, no dispatch."""
        parsed = self.verifier.parse(token)
        keys = await self.keys.keys_for(parsed.kid)
        return self.verifier.verify(parsed, keys)

    async def process(self, token: str | bytes) -> ProcessResult:
        """Verify and act on one SET; raises :class:`~receivers.errors.SetError` (refused) or
        :class:`~receivers.dispatch.HandlerFailed` (not acted on: deliver it again)."""
        try:
            event = await self.validate(token)
            if event.iat < await self.dedup.horizon():
                raise InvalidRequest("SET is older than the replay window")
            if await self.dedup.seen(event.iss, event.jti):
                self.duplicates += 1
                return ProcessResult(event, duplicate=True)
            self.states.check(event, stream_id=self.stream_id)
        except SetError as error:
            self._refused(error)
            raise
        if event.event_type == STREAM_UPDATED:
            self.stream_status = str(event.payload["status"])
        failures = await self.dispatcher.dispatch(event)
        if failures:
            self.handler_failures += 1
            raise HandlerFailed(event.jti, failures)
        await self.dedup.remember(event.iss, event.jti)
        self.processed += 1
        return ProcessResult(event)

    def on_refusal(self, listener: RefusalListener) -> None:
        """Call ``listener`` with every :class:`~receivers.errors.SetError` this receiver raises."""
        self.refusal_listeners.append(listener)

    def _refused(self, error: SetError) -> None:
        self.refusals[error.err] += 1
        for listener in self.refusal_listeners:
            try:
                listener(error)
            except Exception:  # the refusal stands whatever the listener does
                log.exception("refusal listener %r failed", listener)
