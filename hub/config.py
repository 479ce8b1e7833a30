"""Settings: defaults, then a TOML file, then ``SSF_HUB_*`` environment, then flags.

Every value is checked once at start-up; a bad one raises :class:`ConfigError` naming
the setting and where it came from, so the operator sees one clear line, not a trace.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hub.core.addresses import AddressPolicy
from hub.core.retry import RetrySchedule
from hub.errors import ConfigError

ENV_PREFIX = "SSF_HUB_"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_DATA_DIR = Path(".ssf-hub")
MAX_BODY_BYTES = 256 * 1024  # DESIGN.md default request limit
MAX_ACCESS_TOKEN_BYTES = 8 * 1024  # real access tokens are 1-4 KiB
HEADER_TIMEOUT = 5.0
LONG_POLL_SECONDS = 20.0  # how long a returnImmediately=false poll is held by default
LONG_POLL_MAX_SECONDS = 30.0  # hard ceiling for the above
MAX_EVENTS_DEFAULT = 100
MAX_EVENTS_LIMIT = 1000
MIN_VERIFICATION_INTERVAL = 5  # seconds between verification requests per stream (R-VERIFY-2)
KEY_ROTATION_DAYS = 30.0
KEY_OVERLAP_DAYS = 7.0  # an old key stays in the JWKS this long so queued SETs still verify
EXTERNAL_TOKEN_LEEWAY = 30  # seconds of clock skew allowed for external OAuth issuers
PUSH_TIMEOUT = 10.0  # seconds per push attempt (Standard Webhooks suggests 15-30; SETs are tiny)
PUSH_PAUSE_AFTER = 86400.0  # failing this long after a SET exhausted its retries: pause the stream
PUSH_LEASE_SECONDS = 30.0  # research/delivery.md §4: Svix reclaims after 45 s, Convoy 90 s
RETENTION_DAYS = 14.0  # delivered SETs and their attempts stay traceable this long
INGEST_DEDUP_DAYS = 7.0  # an upstream (iss, jti) seen within this window is a duplicate (R-SEC-3)
INGEST_CLOCK_SKEW = 60.0  # seconds an upstream SET's iat may lie in the future (R-SEC-3)
INGEST_JWKS_REFETCH_SECONDS = 10.0  # at most one JWKS refetch per issuer this often (R-SEC-2)


@dataclass(frozen=True, slots=True)
class ExternalIssuerSettings:
    issuer: str
    jwks_uri: str
    audience: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    store: str = "sqlite"
    redis_url: str | None = None
    issuer: str | None = None  # defaults to http://HOST:PORT
    allow_private_endpoints: bool = False
    signing_alg: str = "RS256"
    # Hub processes behind the one port (serve --processes): each a whole hub on the store.
    processes: int = 1
    # Child processes that sign SETs off the event loop; None = one when a second core is there
    # (and none when there are several hub processes: they use the cores already).
    signing_processes: int | None = None
    key_rotation_days: float = KEY_ROTATION_DAYS
    key_overlap_days: float = KEY_OVERLAP_DAYS
    max_body_bytes: int = MAX_BODY_BYTES
    max_access_token_bytes: int = MAX_ACCESS_TOKEN_BYTES
    header_timeout: float = HEADER_TIMEOUT  # seconds to send a request's headers
    body_timeout: float | None = None  # seconds to send its body; None = 5 + max_body_bytes / 64 KiB
    subject_changes_per_second: float = 100.0  # per stream owner (R-SUBJ-3: 429 above); 0 = no cap
    subject_changes_burst: float = 1000.0
    long_poll_seconds: float = LONG_POLL_SECONDS
    long_poll_max_seconds: float = LONG_POLL_MAX_SECONDS
    max_events_default: int = MAX_EVENTS_DEFAULT
    max_events_limit: int = MAX_EVENTS_LIMIT
    min_verification_interval: int = MIN_VERIFICATION_INTERVAL
    inactivity_timeout: int | None = None  # seconds; None = streams never time out
    default_subjects: str = "NONE"
    all_subjects_receivers: tuple[str, ...] = ()  # token subs granted default_subjects=ALL
    sqlite_synchronous: str = "FULL"
    token_leeway: int = EXTERNAL_TOKEN_LEEWAY
    external_issuers: tuple[ExternalIssuerSettings, ...] = ()
    push_timeout: float = PUSH_TIMEOUT
    push_transport: str = "aiohttp"  # "aiohttp" or "httpx": what carries the httpx client's requests
    push_retry_schedule: str = ""  # comma-separated delays in seconds; empty = the built-in schedule
    push_retry_jitter: float = 0.2
    push_pause_after: float = PUSH_PAUSE_AFTER
    push_endpoint_concurrency: int = 16  # as many as one stream may have (push_stream_in_flight)
    push_endpoint_rate: float = 1000.0  # SETs/s to one endpoint_url; 0 = no cap
    push_max_in_flight: int = 200
    # Requests in flight to one push stream, and what they keep in order: "subject" (SETs
    # about one subject never overtake each other) or "stream" (queue order, one at a time).
    push_stream_in_flight: int = 16
    push_order: str = "subject"
    # A replica's claim on a stream's push work; a killed replica's streams move on after this.
    push_lease_seconds: float = PUSH_LEASE_SECONDS
    push_allow_cidrs: tuple[str, ...] = ()  # on-premises ranges push may reach (e.g. 10.20.0.0/16)
    retention_days: float = RETENTION_DAYS
    ingest_dedup_days: float = INGEST_DEDUP_DAYS
    ingest_clock_skew: float = INGEST_CLOCK_SKEW
    ingest_jwks_refetch_seconds: float = INGEST_JWKS_REFETCH_SECONDS
    # Upstream subscriptions (issue #4): how often the store is re-read for added/removed
    # upstreams, each stream at an upstream is checked, and how long a verification may take.
    upstream_reload_interval: float = 5.0
    upstream_check_interval: float = 60.0
    upstream_verify_timeout: float = 30.0
    # Lifetime of the ingest token given to a push upstream; renewed when a third is left.
    upstream_push_token_ttl: float = 90 * 86400.0
    log_level: str = "info"
    log_format: str = "text"  # "text" or "json": one line per event with stable keys (hub.logs)
    access_log: bool = False
    metrics_public: bool = False  # GET /metrics without a token (for a private network)
    tls_ca_file: str | None = None  # PEM certificates trusted for outgoing HTTPS, beside the system's
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def issuer_url(self) -> str:
        if self.issuer:
            return self.issuer.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name != "extra"}
_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the layers and validate. ``overrides`` are command-line flags (None = unset)."""
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        for key, value in _read_toml(Path(config_file)).items():
            raw[key] = (value, f"{config_file}: {key}")
    for name in _FIELDS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            raw[name] = (environ[env_name], f"environment {env_name}")
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = (value, "--" + name.replace("_", "-"))
    values = {name: _coerce(name, value, origin) for name, (value, origin) in raw.items()}
    settings = Settings(**values)
    _validate(settings, {name: origin for name, (_, origin) in raw.items()})
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Allow both a flat file and a [hub] table.
    flat: dict[str, Any] = dict(data.get("hub", {})) if isinstance(data.get("hub"), dict) else {}
    flat.update({k: v for k, v in data.items() if k != "hub"})
    unknown = sorted(set(flat) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(unknown)}")
    return flat


def _coerce(name: str, value: Any, origin: str) -> Any:  # noqa: C901 - one branch per type
    kind = str(_FIELDS[name].type)
    try:
        if name == "external_issuers":
            return _coerce_issuers(value)
        if name in ("all_subjects_receivers", "push_allow_cidrs"):
            if isinstance(value, str):
                return tuple(v for v in (p.strip() for p in value.split(",")) if v)
            return tuple(str(v) for v in value)
        if kind.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _BOOL_TRUE:
                return True
            if text in _BOOL_FALSE:
                return False
            raise ValueError("expected true or false")
        if kind.startswith("int"):
            unset = value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "off"})
            if unset and "None" in kind:
                return None
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(value)
        if kind.startswith("float"):
            unset = value is None or (isinstance(value, str) and value.strip().lower() in {"", "none", "off"})
            if unset and "None" in kind:
                return None
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if kind == "Path":
            return Path(value)
        if value is None:
            return None
        if not isinstance(value, str | int | float):
            raise ValueError("expected a string")
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: bad value {value!r} for {name} ({exc})") from None


def _coerce_issuers(value: Any) -> tuple[ExternalIssuerSettings, ...]:
    if not isinstance(value, list):
        raise ValueError("expected a list of tables with issuer and jwks_uri")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("issuer"), str):
            raise ValueError("each external issuer needs issuer and jwks_uri strings")
        if not isinstance(item.get("jwks_uri"), str):
            raise ValueError(f"external issuer {item['issuer']} needs a jwks_uri string")
        aud = item.get("audience", ())
        aud_t = (aud,) if isinstance(aud, str) else tuple(str(a) for a in aud)
        out.append(ExternalIssuerSettings(item["issuer"], item["jwks_uri"], aud_t))
    return tuple(out)


def _validate(s: Settings, origins: Mapping[str, str]) -> None:  # noqa: C901 - a flat list of checks
    def bad(name: str, why: str) -> ConfigError:
        # Name where the value came from, as the module docstring promises.
        return ConfigError(f"{origins.get(name, 'default')}: setting {name}={getattr(s, name)!r}: {why}")

    if not 0 < s.port < 65536:
        raise bad("port", "must be between 1 and 65535")
    if s.store not in {"sqlite", "redis"}:
        raise bad("store", "must be sqlite or redis")
    if s.store == "redis" and not s.redis_url:
        raise bad("redis_url", "is required with store=redis")
    if s.issuer is not None:
        parts = urlsplit(s.issuer)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
            raise bad("issuer", "must be an http(s) URL with no query or fragment")
    try:
        ipaddress.ip_address(s.host)
    except ValueError:
        if not s.host or any(c in s.host for c in "/ "):
            raise bad("host", "must be an IP address or host name") from None
    if s.signing_alg not in {"RS256", "ES256", "EdDSA"}:
        raise bad("signing_alg", "must be RS256, ES256 or EdDSA")
    if s.key_rotation_days <= 0 or s.key_overlap_days < 0:
        raise bad("key_rotation_days", "rotation must be > 0 days and overlap >= 0 days")
    if s.subject_changes_per_second < 0 or s.subject_changes_burst < 1:
        raise bad("subject_changes_per_second", "need a rate >= 0 (0 = no cap) and a burst >= 1")
    if s.max_body_bytes < 1024:
        raise bad("max_body_bytes", "must be at least 1024")
    if not 1024 <= s.max_access_token_bytes <= 65536:
        raise bad("max_access_token_bytes", "must be between 1024 and 65536")
    if not 0.1 <= s.header_timeout <= 300:
        raise bad("header_timeout", "must be between 0.1 and 300 seconds")
    if s.body_timeout is not None and not 0.1 <= s.body_timeout <= 3600:
        raise bad("body_timeout", "must be between 0.1 and 3600 seconds (or unset)")
    if not 0 <= s.long_poll_seconds <= s.long_poll_max_seconds <= 300:
        raise bad("long_poll_seconds", "need 0 <= long_poll_seconds <= long_poll_max_seconds <= 300")
    if not 1 <= s.max_events_default <= s.max_events_limit <= 10000:
        raise bad("max_events_default", "need 1 <= max_events_default <= max_events_limit <= 10000")
    if s.min_verification_interval < 0:
        raise bad("min_verification_interval", "must be >= 0")
    if not 1 <= s.processes <= 64:
        raise bad("processes", "must be between 1 and 64")
    if s.signing_processes is not None and not 0 <= s.signing_processes <= 16:
        raise bad("signing_processes", "must be between 0 and 16 (or unset: one when a second core is there)")
    if s.inactivity_timeout is not None and s.inactivity_timeout < 60:
        raise bad("inactivity_timeout", "must be at least 60 seconds (or unset)")
    if s.default_subjects not in {"ALL", "NONE"}:
        raise bad("default_subjects", "must be ALL or NONE")
    if s.sqlite_synchronous not in {"FULL", "NORMAL", "EXTRA"}:
        raise bad("sqlite_synchronous", "must be FULL, EXTRA or NORMAL")
    if s.token_leeway < 0 or s.token_leeway > 600:
        raise bad("token_leeway", "must be between 0 and 600 seconds")
    if s.push_transport not in {"aiohttp", "httpx"}:
        raise bad("push_transport", "must be aiohttp or httpx")
    if not 0.1 <= s.push_timeout <= 120:
        raise bad("push_timeout", "must be between 0.1 and 120 seconds")
    try:
        push_schedule(s)
    except ValueError as exc:
        raise bad("push_retry_schedule", str(exc)) from None
    if s.push_pause_after < 0:
        raise bad("push_pause_after", "must be >= 0 seconds")
    if s.push_order not in {"subject", "stream"}:
        raise bad("push_order", "must be subject or stream")
    if not 1 <= s.push_stream_in_flight <= 1000:
        raise bad("push_stream_in_flight", "must be between 1 and 1000")
    if s.push_endpoint_concurrency < 1 or s.push_max_in_flight < 1:
        raise bad("push_endpoint_concurrency", "concurrency caps must be >= 1")
    if not 1 <= s.push_lease_seconds <= 600:
        raise bad("push_lease_seconds", "must be between 1 and 600 seconds")
    if s.push_endpoint_rate < 0:
        raise bad("push_endpoint_rate", "must be >= 0 (0 = no cap)")
    try:
        AddressPolicy.from_strings(s.allow_private_endpoints, s.push_allow_cidrs)
    except ValueError as exc:
        raise bad("push_allow_cidrs", str(exc)) from None
    for name in ("upstream_reload_interval", "upstream_check_interval", "upstream_verify_timeout"):
        if not 0.1 <= getattr(s, name) <= 86400:
            raise bad(name, "must be between 0.1 and 86400 seconds")
    if not 5 <= s.upstream_push_token_ttl <= 365 * 86400:
        raise bad("upstream_push_token_ttl", "must be between 5 seconds and 365 days")
    if s.retention_days <= 0:
        raise bad("retention_days", "must be > 0")
    if s.ingest_dedup_days <= 0:
        raise bad("ingest_dedup_days", "must be > 0")
    if not 0 <= s.ingest_clock_skew <= 3600:
        raise bad("ingest_clock_skew", "must be between 0 and 3600 seconds")
    if not 0 <= s.ingest_jwks_refetch_seconds <= 3600:
        raise bad("ingest_jwks_refetch_seconds", "must be between 0 and 3600 seconds")
    if s.log_level.lower() not in {"critical", "error", "warning", "info", "debug"}:
        raise bad("log_level", "must be one of critical, error, warning, info, debug")
    if s.tls_ca_file is not None and not Path(s.tls_ca_file).is_file():
        raise bad("tls_ca_file", "must be a readable PEM file of CA certificates")
    if s.log_format not in {"text", "json"}:
        raise bad("log_format", "must be text or json")


def push_schedule(settings: Settings) -> RetrySchedule:
    """The retry schedule the settings describe (the built-in one unless overridden)."""
    if settings.push_retry_schedule.strip():
        base = RetrySchedule.parse(settings.push_retry_schedule)
        return RetrySchedule(base.delays, jitter=settings.push_retry_jitter)
    return RetrySchedule(jitter=settings.push_retry_jitter)
