"""One stream's receiving pipeline, shared by the push endpoint and the poll consumer.

``process(token)``: parse (no keys yet) → keys for the ``kid`` from the key source (refetched on
an unknown ``kid``) → signature and claims → de-duplicate by (``iss``, ``jti``) → verification
and stream-updated checks → dispatch. A refusal raises the
:class:`~receivers.errors.SetError` with its RFC 8935 code; anything else is accepted,
including:

- repeats (the same ``jti`` again): acknowledged again, acted on once (R-SEC-3);
- events about subjects this receiver removed, or never added: accepted and acted on — the
  transmitter may keep sending them for a while and they must not be reported as errors
  (R-SUBJ-6); a receiver that wants to ignore them can do so in its handlers;
- verification events without ``state`` and stream-updated events (R-VERIFY-5, R-SSFEV-2),
  in any order relative to other events (R-VERIFY-3);
- unknown event types: acknowledged, no handler runs (R-SET-15 spirit: ignore what you do
  not understand).
"""

from __future__ import annotations

from dataclasses import dataclass

from receivers.dedup import Deduplicator
from receivers.dispatch import Dispatcher
from receivers.events import STREAM_UPDATED, ReceivedEvent
from receivers.jwks import KeySource
from receivers.verification import VerificationStates
from receivers.verify import SetVerifier

__all__ = ["ProcessResult", "Receiver"]


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
        dedup: Deduplicator | None = None,
        states: VerificationStates | None = None,
        stream_id: str | None = None,
    ) -> None:
        self.verifier = verifier
        self.keys = keys
        self.dispatcher = dispatcher if dispatcher is not None else Dispatcher()
        self.dedup = dedup if dedup is not None else Deduplicator(clock=verifier.clock)
        self.states = states if states is not None else VerificationStates(clock=verifier.clock)
        self.stream_id = stream_id
        self.stream_status: str | None = None  # as last announced by stream-updated
        self.processed = 0
        self.duplicates = 0

    async def validate(self, token: str | bytes) -> ReceivedEvent:
        """Signature and claims only: no de-duplication, no state check, no dispatch."""
        parsed = self.verifier.parse(token)
        keys = await self.keys.keys_for(parsed.kid)
        return self.verifier.verify(parsed, keys)

    async def process(self, token: str | bytes) -> ProcessResult:
        event = await self.validate(token)
        if self.dedup.seen(event.iss, event.jti):
            self.duplicates += 1
            return ProcessResult(event, duplicate=True)
        self.states.check(event, stream_id=self.stream_id)
        self.dedup.remember(event.iss, event.jti)
        if event.event_type == STREAM_UPDATED:
            self.stream_status = str(event.payload["status"])
        self.processed += 1
        failures = await self.dispatcher.dispatch(event)
        return ProcessResult(event, handler_failures=failures)
