"""ssf-hub receivers: subscribe to any SSF 1.0 transmitter, verify SETs and act on them.

Agents, tool servers and LLM gateways use it to turn "the IdP revoked Alice's session" into
action: cached tokens for Alice are dropped (:class:`TokenCache`, :class:`CachedTokenAuth`),
policy is re-run (:class:`ContinuousAccess`), and the next request with a stale credential is
refused (:class:`ContinuousAccessMiddleware`). See the README section "The receivers library".

Layers: a pure core (:class:`SetVerifier`, :class:`Deduplicator`, :class:`VerificationStates`,
subject matching, :class:`TokenCache`, :class:`RevocationList`, policy decisions) and I/O at the
edges (:class:`JwksCache`, :class:`StreamClient`, :class:`PollConsumer`, :class:`PushEndpoint`,
:class:`ContinuousAccessMiddleware`). This package never imports :mod:`hub`.
"""

from receivers.audit import AuditLog, AuditRecord
from receivers.client import (
    StreamClient,
    StreamConfig,
    StreamStatus,
    fetch_metadata,
    poll_delivery,
    push_delivery,
)
from receivers.continuous import REVOKING_EVENTS, ContinuousAccess, Verdict
from receivers.dedup import Deduplicator
from receivers.discovery import POLL_METHOD, PUSH_METHOD, TransmitterMetadata, parse_metadata, well_known_urls
from receivers.dispatch import ANY_EVENT, Dispatcher, Handler
from receivers.errors import (
    AccessDenied,
    AuthenticationFailed,
    DiscoveryError,
    InvalidAudience,
    InvalidIssuer,
    InvalidKey,
    InvalidRequest,
    InvalidState,
    IssuerMismatch,
    KeysUnavailable,
    ReceiverError,
    SetError,
    TokenError,
    TransmitterError,
)
from receivers.events import ReceivedEvent
from receivers.identity import (
    AnyIdentity,
    BearerJwtIdentity,
    Caller,
    Credential,
    Identity,
    JwtVerifier,
    TxnTokenIdentity,
)
from receivers.jwks import JwksCache, KeySource, StaticKeys
from receivers.middleware import ContinuousAccessMiddleware
from receivers.oauth import BearerAuth, ClientCredentials, StaticToken, TokenSource
from receivers.policy import Decision, DecisionRecord, PolicyFunction, PolicyInput, default_policy
from receivers.poll import PollBatch, PollConsumer
from receivers.principals import principals_from_claims, unverified_claims
from receivers.push import PushEndpoint
from receivers.receiver import ProcessResult, Receiver
from receivers.revocations import Revocation, RevocationList
from receivers.subjects import InvalidSubject, subject_key, subjects_match, validate_subject
from receivers.tokenauth import CachedTokenAuth, IssuedToken
from receivers.tokens import CachedToken, TokenCache, TokenKind
from receivers.verification import VerificationStates
from receivers.verify import DEFAULT_ALGORITHMS, SetVerifier

__all__ = [
    "ANY_EVENT",
    "DEFAULT_ALGORITHMS",
    "POLL_METHOD",
    "PUSH_METHOD",
    "REVOKING_EVENTS",
    "AccessDenied",
    "AnyIdentity",
    "AuditLog",
    "AuditRecord",
    "AuthenticationFailed",
    "BearerAuth",
    "BearerJwtIdentity",
    "CachedToken",
    "CachedTokenAuth",
    "Caller",
    "ClientCredentials",
    "ContinuousAccess",
    "ContinuousAccessMiddleware",
    "Credential",
    "Decision",
    "DecisionRecord",
    "Deduplicator",
    "DiscoveryError",
    "Dispatcher",
    "Handler",
    "Identity",
    "InvalidAudience",
    "InvalidIssuer",
    "InvalidKey",
    "InvalidRequest",
    "InvalidState",
    "InvalidSubject",
    "IssuedToken",
    "IssuerMismatch",
    "JwksCache",
    "JwtVerifier",
    "KeySource",
    "KeysUnavailable",
    "PolicyFunction",
    "PolicyInput",
    "PollBatch",
    "PollConsumer",
    "ProcessResult",
    "PushEndpoint",
    "ReceivedEvent",
    "Receiver",
    "ReceiverError",
    "Revocation",
    "RevocationList",
    "SetError",
    "SetVerifier",
    "StaticKeys",
    "StaticToken",
    "StreamClient",
    "StreamConfig",
    "StreamStatus",
    "TokenCache",
    "TokenError",
    "TokenKind",
    "TokenSource",
    "TransmitterError",
    "TransmitterMetadata",
    "TxnTokenIdentity",
    "Verdict",
    "VerificationStates",
    "default_policy",
    "fetch_metadata",
    "parse_metadata",
    "poll_delivery",
    "principals_from_claims",
    "push_delivery",
    "subject_key",
    "subjects_match",
    "unverified_claims",
    "validate_subject",
    "well_known_urls",
]
