"""Upstream issuers the hub trusts: who they are, where their keys are, what they may say.

A :class:`TrustedIssuer` is one identity provider or risk engine whose SETs the hub accepts at
``/ssf/ingest``. Its keys come from a ``jwks_uri`` or an inline JWK Set (never from the token:
``jku``/``x5u`` are not followed, R-SEC-2). Its algorithms are an allow-list drawn from
:data:`ALLOWED_ALGORITHMS` only: asymmetric signatures, never ``none`` or HMAC (R-SEC-1).

Two optional limits refuse a SET with ``access_denied`` (R-PUSH-6):

- ``event_types``: the event types it may send (URIs; aliases resolved by the caller);
- ``subject_patterns``: the subjects it is authoritative for, as ``FORMAT:GLOB`` strings,
  e.g. ``email:*@example.com`` or ``iss_sub:https://idp.example.com *``. The glob
  (:func:`fnmatch.fnmatchcase`) is matched against the identifier's value: the member of a
  one-member format, or the members in their defined order joined by one space (``iss_sub``:
  ``"ISS SUB"``). Email domains are lower-cased first (R-SUB-4). Every simple identifier in a
  complex or aliases subject must match some pattern: otherwise an issuer authoritative for
  one user could reach another's device by naming both.

``strict`` turns off tolerant ingest for the issuer (:mod:`hub.core.tolerance`): an optional
event claim that does not fit its schema refuses the SET (``invalid_request``) instead of
being repaired.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.core.inputs import parse_url
from hub.errors import InvalidRequest
from receivers.subjects import (
    ALIASES,
    COMPLEX,
    FORMAT_MEMBERS,
    IP_ADDRESSES,
    LEGACY_FORMATS,
    canonical_format,
    members,
)
from receivers.urls import is_loopback_host

__all__ = [
    "ALLOWED_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "TrustedIssuer",
    "parse_trusted_issuer",
    "subject_values",
]

# R-SEC-1: asymmetric only. RS256 is the CAEP interoperability profile's algorithm.
ALLOWED_ALGORITHMS: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA")
DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256")
MAX_ISS_LENGTH = 1024
MAX_PATTERNS = 100
_FIELDS = frozenset({"iss", "jwks_uri", "jwks", "algorithms", "event_types", "subject_patterns", "strict"})


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """One trusted upstream issuer (exactly one of ``jwks_uri`` and ``jwks`` is set)."""

    iss: str
    jwks_uri: str | None = None
    jwks: Mapping[str, Any] | None = None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    event_types: tuple[str, ...] | None = None  # None: any event type the hub knows
    subject_patterns: tuple[str, ...] | None = None  # None: any subject
    # True: an optional event claim that does not fit refuses the SET (no tolerant repair).
    strict: bool = False
    added_at: float = 0.0

    def may_send(self, event_uri: str) -> bool:
        return self.event_types is None or event_uri in self.event_types

    def authoritative_for(self, subject: Mapping[str, Any]) -> bool:
        """Whether every simple identifier in ``subject`` matches one of the patterns."""
        if self.subject_patterns is None:
            return True
        values = subject_values(subject)
        return bool(values) and all(
            any(_pattern_matches(p, fmt, value) for p in self.subject_patterns) for fmt, value in values
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "iss": self.iss,
            "jwks_uri": self.jwks_uri,
            "jwks": None if self.jwks is None else dict(self.jwks),
            "algorithms": list(self.algorithms),
            "event_types": None if self.event_types is None else list(self.event_types),
            "subject_patterns": None if self.subject_patterns is None else list(self.subject_patterns),
            "strict": self.strict,
            "added_at": self.added_at,
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> TrustedIssuer:
        def opt_tuple(name: str) -> tuple[str, ...] | None:
            value = data.get(name)
            return None if value is None else tuple(value)

        return cls(
            iss=data["iss"],
            jwks_uri=data.get("jwks_uri"),
            jwks=data.get("jwks"),
            algorithms=tuple(data.get("algorithms") or DEFAULT_ALGORITHMS),
            event_types=opt_tuple("event_types"),
            subject_patterns=opt_tuple("subject_patterns"),
            strict=data.get("strict") is True,
            added_at=float(data.get("added_at") or 0.0),
        )

    def public_view(self) -> dict[str, Any]:
        """What the admin API and ``issuers list`` show (the record, keys summarised)."""
        out = self.to_record()
        if self.jwks is not None:
            out["jwks"] = {"kids": [k.get("kid") for k in self.jwks.get("keys", []) if isinstance(k, dict)]}
        return out


def parse_trusted_issuer(
    body: Any,
    *,
    resolve_event: Callable[[str], str] | None = None,
    added_at: float = 0.0,
) -> TrustedIssuer:
    """Check an issuer registration (admin API body or CLI flags) and build the record.

    ``resolve_event`` maps a short name or URI to the canonical event-type URI (raising
    :class:`InvalidRequest` for an unknown one).
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest("an issuer registration must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    iss = body.get("iss")
    if not isinstance(iss, str) or not iss.strip() or len(iss) > MAX_ISS_LENGTH or iss != iss.strip():
        raise InvalidRequest("iss must be a non-empty string without surrounding spaces")
    jwks_uri, jwks = body.get("jwks_uri"), body.get("jwks")
    if (jwks_uri is None) == (jwks is None):
        raise InvalidRequest("give exactly one of jwks_uri and jwks")
    if jwks_uri is not None:
        _check_jwks_uri(jwks_uri)
    if jwks is not None:
        _check_inline_jwks(jwks)
    return TrustedIssuer(
        iss=iss,
        jwks_uri=jwks_uri,
        jwks=jwks,
        algorithms=_algorithms(body.get("algorithms")),
        event_types=_event_types(body.get("event_types"), resolve_event),
        subject_patterns=_patterns(body.get("subject_patterns")),
        strict=_strict(body.get("strict", False)),
        added_at=added_at,
    )


def _check_jwks_uri(value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidRequest("jwks_uri must be a URL string")
    parts = parse_url(value, what="jwks_uri")
    # R-SEC-4 asks for https; plain http only to this machine (development, loopback tests).
    schemes = {"https", "http"} if is_loopback_host(parts.hostname) else {"https"}
    if parts.scheme not in schemes or not parts.hostname or parts.fragment or parts.username:
        raise InvalidRequest("jwks_uri must be an https URL (http only for loopback) without credentials")


def _check_inline_jwks(value: Any) -> None:
    if not isinstance(value, Mapping) or not isinstance(value.get("keys"), list) or not value["keys"]:
        raise InvalidRequest('jwks must be a JWK Set: {"keys": [...]} with at least one key')
    for key in value["keys"]:
        if not isinstance(key, Mapping) or not isinstance(key.get("kty"), str):
            raise InvalidRequest("every key in jwks must be a JWK object with kty")
        if key["kty"] == "oct":
            raise InvalidRequest("symmetric (oct) keys are not accepted for SETs (R-SEC-1)")
        if any(private in key for private in ("d", "p", "q")):
            raise InvalidRequest("jwks must hold public keys only")


def _algorithms(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_ALGORITHMS
    if not isinstance(value, list | tuple) or not value or not all(isinstance(a, str) for a in value):
        raise InvalidRequest("algorithms must be a non-empty list of names")
    refused = [a for a in value if a not in ALLOWED_ALGORITHMS]
    if refused:
        allowed = ", ".join(ALLOWED_ALGORITHMS)
        raise InvalidRequest(f"algorithm(s) {', '.join(refused)} not allowed; choose from {allowed}")
    return tuple(dict.fromkeys(value))


def _strict(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest("strict must be true or false")
    return value


def _event_types(value: Any, resolve_event: Callable[[str], str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value or not all(isinstance(e, str) for e in value):
        raise InvalidRequest("event_types must be a non-empty list of event types")
    uris = [resolve_event(e) if resolve_event is not None else e for e in value]
    return tuple(dict.fromkeys(uris))


def _patterns(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value or len(value) > MAX_PATTERNS:
        raise InvalidRequest(f"subject_patterns must be a list of 1 to {MAX_PATTERNS} patterns")
    for pattern in value:
        fmt, sep, glob = pattern.partition(":") if isinstance(pattern, str) else ("", "", "")
        if not sep or not glob or LEGACY_FORMATS.get(fmt, fmt) not in _PATTERN_FORMATS:
            formats = ", ".join(sorted(_PATTERN_FORMATS))
            raise InvalidRequest(
                f"subject pattern {pattern!r} must be FORMAT:GLOB with FORMAT one of {formats}"
            )
    return tuple(dict.fromkeys(value))


_PATTERN_FORMATS = frozenset(FORMAT_MEMBERS) | {IP_ADDRESSES}


def subject_values(subject: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(format, value) for every simple identifier inside a validated subject."""
    fmt = canonical_format(subject) or ""
    if fmt == COMPLEX:
        return [v for m in members(subject).values() if isinstance(m, Mapping) for v in subject_values(m)]
    if fmt == ALIASES:
        ids = subject.get("identifiers", [])
        return [v for i in ids if isinstance(i, Mapping) for v in subject_values(i)]
    if fmt == IP_ADDRESSES:
        return [(IP_ADDRESSES, str(a)) for a in subject.get(IP_ADDRESSES, [])]
    if fmt in FORMAT_MEMBERS:
        parts = [str(subject.get(name, "")) for name in FORMAT_MEMBERS[fmt]]
        if fmt == "email":
            local, at, domain = parts[0].rpartition("@")
            parts[0] = local + at + domain.lower()
        return [(fmt, " ".join(parts))]
    # A proprietary format has no defined value; no pattern can vouch for it.
    return [(fmt, "")]


def _pattern_matches(pattern: str, fmt: str, value: str) -> bool:
    pattern_fmt, _, glob = pattern.partition(":")
    if LEGACY_FORMATS.get(pattern_fmt, pattern_fmt) != fmt or not value:
        return False
    if fmt == "email":
        local, at, domain = glob.rpartition("@")
        glob = local + at + domain.lower()
    return fnmatch.fnmatchcase(value, glob)
