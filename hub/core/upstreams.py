"""Upstream subscriptions: the hub as an SSF receiver of identity providers (issue #4), no I/O.

An upstream is what an operator configures (:class:`Upstream`: where the transmitter is,
how to get an access token there, push or poll, which events) plus what the hub learned
while connected (:class:`UpstreamState`: the transmitter's issuer, the stream it created
there, health, last event). The two are stored apart so the supervisor writing state never
races an operator editing configuration.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hub.core.events import resolve_event_type
from hub.core.inputs import parse_url
from hub.core.model import POLL_METHOD, PUSH_METHOD
from hub.core.upstream_compat import Compatibility, parse_compatibility
from hub.errors import InvalidRequest
from receivers.events import CATALOGUE

UPSTREAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Discovery document names, newest first (R-DISC-1, R-DISC-3, AMB-1).
WELL_KNOWN_NAMES = ("ssf-configuration", "sse-configuration", "risc-configuration")
MAX_EVENTS_REQUESTED = 100
MAX_ADAPTATIONS = 8
ADD_FIELDS = {
    "upstream_id",
    "config_url",
    "token_source",
    "delivery",
    "events_requested",
    "description",
    "compatibility",
}
AUTO_DELIVERY = "auto"  # the hub picks from the transmitter's delivery_methods_supported


class DeliveryMode(enum.StrEnum):
    PUSH = "push"  # the upstream POSTs to the hub's /ssf/ingest (RFC 8935)
    POLL = "poll"  # the hub long-polls the upstream (RFC 8936)


class Health(enum.StrEnum):
    PENDING = "pending"  # not connected yet
    CONNECTING = "connecting"  # stream set up, waiting for the verification event
    HEALTHY = "healthy"  # stream exists, verified, no error since
    FAILING = "failing"  # the last attempt failed; retried with backoff
    DEGRADED = "degraded"  # connected, but the transmitter refused what the link needs (re-enable)


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """OAuth client credentials with a ``private_key_jwt`` client assertion (RFC 7523)."""

    token_endpoint: str
    client_id: str
    private_key_file: str
    scope: str | None = None
    audience: str | None = None

    kind = "client_credentials"


@dataclass(frozen=True, slots=True)
class StaticBearer:
    """A fixed access token, for development against a transmitter that mints them by hand."""

    token: str

    kind = "bearer"


TokenSourceSpec = ClientCredentials | StaticBearer


@dataclass(frozen=True, slots=True)
class UpstreamState:
    issuer: str | None = None  # from the transmitter's metadata
    jwks_uri: str | None = None
    stream_id: str | None = None  # the stream at the upstream
    remote_status: str | None = None  # as last read or announced (stream-updated)
    remote_status_reason: str | None = None
    health: Health = Health.PENDING
    last_error: str | None = None
    last_error_at: float | None = None
    failures: int = 0  # consecutive
    connected_at: float | None = None
    verified_at: float | None = None
    last_event_at: float | None = None
    ingest_token_expires_at: float | None = None  # push: the token the upstream sends us
    delivery: str | None = None  # push or poll, as in use (chosen by the hub for "auto")
    # What the link did to work with this transmitter, newest last (issue #15)
    adaptations: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        data = asdict(self)
        data["health"] = self.health.value
        data["adaptations"] = list(self.adaptations)
        return data

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> UpstreamState:
        values = dict(data)
        values["health"] = Health(values.get("health", Health.PENDING.value))
        values["adaptations"] = tuple(values.get("adaptations") or ())
        return cls(**values)

    def adapted(self, note: str) -> UpstreamState:
        """This state with ``note`` as the newest adaptation (the last few are kept)."""
        kept = tuple(a for a in self.adaptations if a != note)[-(MAX_ADAPTATIONS - 1) :]
        return replace(self, adaptations=(*kept, note))

    def failed(self, error: str, at: float) -> UpstreamState:
        return replace(
            self, health=Health.FAILING, last_error=error, last_error_at=at, failures=self.failures + 1
        )


@dataclass(frozen=True, slots=True)
class Upstream:
    upstream_id: str
    config_url: str
    token_source: TokenSourceSpec
    delivery: DeliveryMode | None  # None: picked from the transmitter's metadata at connect
    events_requested: tuple[str, ...]
    description: str | None = None
    created_at: float = 0.0
    state: UpstreamState = field(default_factory=UpstreamState)
    compatibility: Compatibility = field(default_factory=Compatibility)

    @property
    def issuer_hint(self) -> str:
        """The transmitter's issuer as far as the configured URL tells."""
        return issuer_from_config_url(self.config_url)

    def config_record(self) -> dict[str, Any]:
        """Everything but the state, JSON-safe (round-trips through :meth:`from_records`)."""
        source: dict[str, Any] = {"type": self.token_source.kind, **asdict(self.token_source)}
        return {
            "upstream_id": self.upstream_id,
            "config_url": self.config_url,
            "token_source": source,
            "delivery": self.delivery.value if self.delivery is not None else AUTO_DELIVERY,
            "events_requested": list(self.events_requested),
            "description": self.description,
            "created_at": self.created_at,
            "compatibility": self.compatibility.to_record(),
        }

    @classmethod
    def from_records(cls, config: Mapping[str, Any], state: Mapping[str, Any] | None) -> Upstream:
        return cls(
            upstream_id=config["upstream_id"],
            config_url=config["config_url"],
            token_source=_token_source(config["token_source"]),
            delivery=None if config["delivery"] == AUTO_DELIVERY else DeliveryMode(config["delivery"]),
            events_requested=tuple(config["events_requested"]),
            description=config.get("description"),
            created_at=float(config.get("created_at", 0.0)),
            state=UpstreamState.from_record(state or {}),
            compatibility=Compatibility.from_record(config.get("compatibility")),
        )

    def public_view(self) -> dict[str, Any]:
        """Configuration and state for admins; a static bearer token is not shown."""
        out = self.config_record()
        if isinstance(self.token_source, StaticBearer):
            out["token_source"] = {"type": StaticBearer.kind}
        out["state"] = self.state.to_record()
        return out


def _token_source(data: Mapping[str, Any]) -> TokenSourceSpec:
    values = {k: v for k, v in data.items() if k != "type"}
    if data.get("type") == StaticBearer.kind:
        return StaticBearer(**values)
    return ClientCredentials(**values)


def issuer_from_config_url(url: str) -> str:
    """The issuer a configuration URL belongs to: a well-known URL is turned back into its
    issuer (path insertion, R-DISC-1, or appended; AMB-1 names); anything else is the issuer."""
    parts = urlsplit(url)
    path = parts.path
    for name in WELL_KNOWN_NAMES:
        marker = f"/.well-known/{name}"
        if path.startswith(marker):
            path = path[len(marker) :]
            break
        if path.endswith(marker):
            path = path[: -len(marker)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def choose_delivery(configured: DeliveryMode | None, methods_supported: tuple[str, ...]) -> DeliveryMode:
    """The delivery to ask for: the operator's choice, else the one method the transmitter
    lists (SSF 1.0 §7.1 delivery_methods_supported), else poll as before."""
    if configured is not None:
        return configured
    push, poll = PUSH_METHOD in methods_supported, POLL_METHOD in methods_supported
    return DeliveryMode.PUSH if push and not poll else DeliveryMode.POLL


def backoff_delay(failures: int, *, initial: float = 1.0, cap: float = 300.0) -> float:
    """Seconds to wait after ``failures`` consecutive failures: doubling from ``initial`` to ``cap``."""
    if failures <= 0:
        return 0.0
    return float(min(cap, initial * 2.0 ** (failures - 1)))


def _http_url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{name} is required: an http(s) URL")
    parts = parse_url(value, what=name)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise InvalidRequest(f"{name} must be an http(s) URL without a fragment")
    return value


def _optional_text(body: Mapping[str, Any], name: str, limit: int = 1024) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise InvalidRequest(f"{name} must be a non-empty printable string of at most {limit} characters")
    return value


def parse_token_source(value: Any) -> TokenSourceSpec:
    if not isinstance(value, Mapping):
        raise InvalidRequest('token_source must be an object with "type": client_credentials or bearer')
    kind = value.get("type")
    if kind == StaticBearer.kind:
        unknown = sorted(set(value) - {"type", "token"})
        token = _optional_text(value, "token", 8192)
        if unknown or token is None:
            raise InvalidRequest('a bearer token_source is {"type": "bearer", "token": "..."}')
        return StaticBearer(token)
    if kind == ClientCredentials.kind:
        allowed = {"type", "token_endpoint", "client_id", "private_key_file", "scope", "audience"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise InvalidRequest(f"unknown token_source field(s): {', '.join(unknown)}")
        client_id = _optional_text(value, "client_id")
        key_file = _optional_text(value, "private_key_file", 4096)
        if client_id is None or key_file is None:
            raise InvalidRequest("client_credentials needs token_endpoint, client_id and private_key_file")
        return ClientCredentials(
            token_endpoint=_http_url(value.get("token_endpoint"), "token_endpoint"),
            client_id=client_id,
            private_key_file=key_file,
            scope=_optional_text(value, "scope"),
            audience=_optional_text(value, "audience"),
        )
    raise InvalidRequest("token_source type must be client_credentials or bearer")


def _event_uri(name: str) -> str:
    # Short names (session-revoked) for operators; URIs the hub does not know are asked for as given.
    if name in CATALOGUE:
        return resolve_event_type(name).uri
    if ":" not in name:
        raise InvalidRequest(f"unknown event {name!r}: give a short name the hub knows or a URI")
    return name


def parse_upstream(body: Any, *, upstream_id: str, default_events: tuple[str, ...], now: float) -> Upstream:
    """An operator's request to add an upstream (admin API and CLI share it)."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("the request body must be a JSON object")
    unknown = sorted(set(body) - ADD_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    chosen = body.get("upstream_id", upstream_id)
    if not isinstance(chosen, str) or not UPSTREAM_ID.match(chosen):
        raise InvalidRequest("upstream_id: 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
    delivery = body.get("delivery", AUTO_DELIVERY)
    if delivery not in (DeliveryMode.PUSH.value, DeliveryMode.POLL.value, AUTO_DELIVERY):
        raise InvalidRequest("delivery must be push, poll or auto")
    events = body.get("events_requested")
    if events is None:
        events_requested = default_events
    elif (
        not isinstance(events, list)
        or not events
        or len(events) > MAX_EVENTS_REQUESTED
        or not all(isinstance(e, str) and e for e in events)
    ):
        raise InvalidRequest("events_requested must be a non-empty array of event-type URIs")
    else:
        events_requested = tuple(dict.fromkeys(_event_uri(e) for e in events))
    return Upstream(
        upstream_id=chosen,
        config_url=_http_url(body.get("config_url"), "config_url"),
        token_source=parse_token_source(body.get("token_source")),
        delivery=None if delivery == AUTO_DELIVERY else DeliveryMode(delivery),
        events_requested=events_requested,
        description=_optional_text(body, "description"),
        created_at=now,
        compatibility=parse_compatibility(body.get("compatibility")),
    )
