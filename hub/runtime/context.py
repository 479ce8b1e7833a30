"""The assembled hub: every part a request handler, a timed job or an upstream link needs.

Built once per process by :func:`hub.runtime.assembly.build_context` (in the app's lifespan).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.auth.limits import ClientLimits
from hub.auth.tokens import TokenValidator
from hub.config import Settings
from hub.core.streams import StreamPolicy
from hub.delivery.polling import PollDelivery
from hub.delivery.push.dispatcher import PushDispatcher
from hub.ingest import IngestPipeline, IssuerRegistry
from hub.keys.ring import SigningKeyRing
from hub.keys.storage import KeyStorage
from hub.store.base import Store
from hub.transmitter.issuing import Transmitter
from hub.transmitter.management import StreamManagement
from hub.upstreams.supervisor import UpstreamSupervisor


@dataclass(frozen=True, slots=True)
class ProcessSeat:
    """Which of the ``serve --processes`` hub processes this is: ``index`` of ``count``."""

    index: int
    count: int

    @property
    def has_siblings(self) -> bool:
        return self.count > 1


@dataclass(slots=True)
class HubContext:
    settings: Settings
    store: Store
    keys: SigningKeyRing
    tokens: TokenValidator
    transmitter: Transmitter
    streams: StreamManagement
    polls: PollDelivery
    policy: StreamPolicy
    push: PushDispatcher
    issuers: IssuerRegistry
    ingest: IngestPipeline
    subject_limits: ClientLimits = field(kw_only=True)  # R-SUBJ-3 budgets per stream owner
    upstreams: UpstreamSupervisor | None = None  # set once the lifespan started it
    key_storage: KeyStorage = field(kw_only=True)  # where the keys above persist
