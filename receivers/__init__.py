"""ssf-hub receivers: subscribe to any SSF 1.0 transmitter, verify SETs and act on them.

Agents, tool servers and LLM gateways use it to turn "the IdP revoked Alice's session" into
action: cached tokens for Alice are dropped (:class:`TokenCache`, :class:`CachedTokenAuth`),
policy is re-run (:class:`ContinuousAccess`), and the next request with a stale credential is
refused (:class:`ContinuousAccessMiddleware`). See the README section "The receivers library".

The one way to subscribe: ``async with Hub(url, auth=...).subscribe(events=..., subjects=...,
delivery=Poll() | Push(url), on=access) as sub:`` (:mod:`receivers.subscription`). Typed
events (``dispatcher.on(SessionRevoked)``) are in :mod:`receivers.typed`.

``__all__`` holds what the README examples use; everything else is imported from its module
(:mod:`receivers.verify`, :mod:`receivers.poll`, :mod:`receivers.errors`...). The names this
package exported before stay importable from it. This package never imports :mod:`hub`.
"""

from receivers.client import StreamClient
from receivers.continuous import ContinuousAccess
from receivers.dispatch import Dispatcher
from receivers.errors import ReceiverError
from receivers.events import ReceivedEvent
from receivers.identity import AnyIdentity, BearerJwtIdentity, JwtVerifier, TxnTokenIdentity
from receivers.introspection import IntrospectionIdentity
from receivers.jwks import JwksCache
from receivers.middleware import ContinuousAccessMiddleware
from receivers.oauth import ClientCredentials, StaticToken
from receivers.policy import Decision, PolicyInput
from receivers.push import PushEndpoint
from receivers.redis_state import RedisState
from receivers.subscription import Hub, Poll, Push, Subscription
from receivers.tokenauth import CachedTokenAuth, token_key
from receivers.tokens import TokenCache

__all__ = [
    "AnyIdentity",
    "BearerJwtIdentity",
    "CachedTokenAuth",
    "ClientCredentials",
    "ContinuousAccess",
    "ContinuousAccessMiddleware",
    "Decision",
    "Dispatcher",
    "Hub",
    "IntrospectionIdentity",
    "JwksCache",
    "JwtVerifier",
    "PolicyInput",
    "Poll",
    "Push",
    "PushEndpoint",
    "ReceivedEvent",
    "ReceiverError",
    "RedisState",
    "StaticToken",
    "StreamClient",
    "Subscription",
    "TokenCache",
    "TxnTokenIdentity",
    "token_key",
]

# Exported here before the API was slimmed: still importable from the package, not advertised.
from receivers.audit import AuditLog as AuditLog
from receivers.audit import AuditRecord as AuditRecord
from receivers.client import (
    StreamConfig as StreamConfig,
)
from receivers.client import (
    StreamStatus as StreamStatus,
)
from receivers.client import (
    fetch_metadata as fetch_metadata,
)
from receivers.client import (
    poll_delivery as poll_delivery,
)
from receivers.client import (
    push_delivery as push_delivery,
)
from receivers.continuous import REVOKING_EVENTS as REVOKING_EVENTS
from receivers.continuous import Verdict as Verdict
from receivers.dedup import Deduplicator as Deduplicator
from receivers.discovery import (
    POLL_METHOD as POLL_METHOD,
)
from receivers.discovery import (
    PUSH_METHOD as PUSH_METHOD,
)
from receivers.discovery import (
    TransmitterMetadata as TransmitterMetadata,
)
from receivers.discovery import (
    parse_metadata as parse_metadata,
)
from receivers.discovery import (
    well_known_urls as well_known_urls,
)
from receivers.dispatch import ANY_EVENT as ANY_EVENT
from receivers.dispatch import Handler as Handler
from receivers.errors import (
    AccessDenied as AccessDenied,
)
from receivers.errors import (
    AuthenticationFailed as AuthenticationFailed,
)
from receivers.errors import (
    DiscoveryError as DiscoveryError,
)
from receivers.errors import (
    InvalidAudience as InvalidAudience,
)
from receivers.errors import (
    InvalidIssuer as InvalidIssuer,
)
from receivers.errors import (
    InvalidKey as InvalidKey,
)
from receivers.errors import (
    InvalidRequest as InvalidRequest,
)
from receivers.errors import (
    InvalidState as InvalidState,
)
from receivers.errors import (
    IssuerMismatch as IssuerMismatch,
)
from receivers.errors import (
    KeysUnavailable as KeysUnavailable,
)
from receivers.errors import (
    SetError as SetError,
)
from receivers.errors import (
    TokenError as TokenError,
)
from receivers.errors import (
    TransmitterError as TransmitterError,
)
from receivers.identity import Caller as Caller
from receivers.identity import Credential as Credential
from receivers.identity import Identity as Identity
from receivers.jwks import KeySource as KeySource
from receivers.jwks import StaticKeys as StaticKeys
from receivers.oauth import BearerAuth as BearerAuth
from receivers.oauth import TokenSource as TokenSource
from receivers.policy import (
    DecisionRecord as DecisionRecord,
)
from receivers.policy import (
    PolicyFunction as PolicyFunction,
)
from receivers.policy import (
    default_policy as default_policy,
)
from receivers.poll import PollBatch as PollBatch
from receivers.poll import PollConsumer as PollConsumer
from receivers.principals import (
    principals_from_claims as principals_from_claims,
)
from receivers.principals import (
    unverified_claims as unverified_claims,
)
from receivers.receiver import ProcessResult as ProcessResult
from receivers.receiver import Receiver as Receiver
from receivers.revocations import Revocation as Revocation
from receivers.revocations import RevocationList as RevocationList
from receivers.subjects import (
    InvalidSubject as InvalidSubject,
)
from receivers.subjects import (
    subject_key as subject_key,
)
from receivers.subjects import (
    subjects_match as subjects_match,
)
from receivers.subjects import (
    validate_subject as validate_subject,
)
from receivers.tokenauth import IssuedToken as IssuedToken
from receivers.tokens import CachedToken as CachedToken
from receivers.tokens import TokenKind as TokenKind
from receivers.verification import VerificationStates as VerificationStates
from receivers.verify import DEFAULT_ALGORITHMS as DEFAULT_ALGORITHMS
from receivers.verify import SetVerifier as SetVerifier
