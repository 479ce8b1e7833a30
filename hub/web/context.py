"""Everything a request handler needs, built once per app in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from hub.access import TokenValidator
from hub.client_limits import ClientLimits
from hub.config import Settings
from hub.core.streams import StreamPolicy
from hub.ingest import IngestPipeline, IssuerRegistry
from hub.key_storage import KeyStorage
from hub.keys import SigningKeyRing
from hub.management import StreamManagement
from hub.polling import PollDelivery
from hub.push.dispatcher import PushDispatcher
from hub.store.base import Store
from hub.transmitter import Transmitter
from hub.upstreams.supervisor import UpstreamSupervisor


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


def hub_of(request: Request) -> HubContext:
    ctx: HubContext = request.app.state.hub
    return ctx
