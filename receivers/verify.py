"""Verifying a Security Event Token: sans-IO, no network, no clock of its own.

:class:`SetVerifier` works in two steps so that the caller decides where keys come from:

1. :meth:`SetVerifier.parse` reads the compact JWS without trusting it and refuses what can be
   refused before any cryptography or key fetch: not a JWS, ``typ`` other than
   ``secevent+jwt`` (R-SET-8), an algorithm off the allow-list (never ``none`` or HMAC,
   R-SEC-1), unknown ``crit`` headers (R-SEC-2), and an ``iss`` other than the stream's
   (R-SET-13) — so a SET from a stranger never makes us fetch keys.
2. :meth:`SetVerifier.verify` checks the signature with the candidate keys for the header's
   ``kid`` and then the claims: ``aud`` names us, ``iat`` present, not in the future beyond
   the allowed skew and not older than ``max_age`` (R-SEC-3: a SET older than the
   de-duplication window could be replayed and acted on again), no ``sub`` and no ``exp``
   (R-SET-9, -10), ``jti``, ``events`` (R-SET-6), a well-formed ``sub_id`` (R-SET-11; legacy
   in-event ``subject``, AMB-3) whose critical complex members we understand (R-SUB-9). SSE
   ID1 stream events (verification, stream-updated) named no subject: their ``subject`` is
   ``{}``. A ``null`` verification ``state`` is read as absent.

Each failure raises the :class:`~receivers.errors.SetError` carrying its RFC 8935 code:
``invalid_request`` (malformed, wrong ``typ``, forbidden claims), ``invalid_key`` (unknown
``kid``, refused algorithm, bad signature), ``invalid_issuer``, ``invalid_audience``.
Keys are never taken from the token (``jku``, ``x5u``, ``jwk`` are ignored).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from receivers.errors import InvalidAudience, InvalidIssuer, InvalidKey, InvalidRequest
from receivers.events import STREAM_UPDATED, VERIFICATION, ReceivedEvent, canonical_event_type
from receivers.subjects import COMPLEX_MEMBER_NAMES, InvalidSubject, is_complex, members, validate_subject

__all__ = ["DEFAULT_ALGORITHMS", "ParsedSet", "SetVerifier"]

# Asymmetric only. RS256 is what the CAEP interoperability profile requires (R-SET-16).
DEFAULT_ALGORITHMS: tuple[str, ...] = ("RS256", "PS256", "ES256", "EdDSA", "Ed25519")
SET_TYP = "secevent+jwt"
# The replay window: a SET issued longer ago than this is refused. It equals the default
# memory of receivers.dedup.Deduplicator, so nothing accepted can be forgotten and accepted again.
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
MAX_SET_BYTES = 64 * 1024
_STATUSES = frozenset({"enabled", "paused", "disabled"})
_STREAM_EVENTS = frozenset({VERIFICATION, STREAM_UPDATED})


@dataclass(frozen=True)
class ParsedSet:
    """A compact SET split into its parts, nothing verified yet except its shape."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    signature: jws.CompactSignature = field(repr=False)

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def jti(self) -> str | None:
        """The unverified ``jti`` (to name the SET in an error report)."""
        jti = self.claims.get("jti")
        return jti if isinstance(jti, str) else None


class SetVerifier:
    """Checks SETs of one stream: one issuer, our audience(s), an algorithm allow-list.

    ``issuer`` must be the discovered issuer, which the stream client has already checked is
    the stream's ``iss`` (R-SET-13, R-STREAM-5). ``audience``: the values of which ``aud``
    must contain at least one (the stream's ``aud``). ``critical_subject_members`` comes from
    the transmitter metadata; ``understood_members`` are the complex-subject member names this
    receiver acts on (R-SUB-9). ``clock`` returns seconds since the epoch.
    ``check_stream_events=False`` leaves the claims of verification and stream-updated events
    to the caller (a hub that validates every event against its schema itself).
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Collection[str],
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        max_future_skew: float = 60.0,
        max_age: float | None = DEFAULT_MAX_AGE,
        critical_subject_members: Iterable[str] = (),
        understood_members: Iterable[str] = COMPLEX_MEMBER_NAMES,
        clock: Callable[[], float] = time.time,
        check_stream_events: bool = True,
    ) -> None:
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not self.audiences:
            raise ValueError("at least one audience is required")
        self.algorithms = tuple(algorithms)
        bad = [a for a in self.algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if bad or not self.algorithms:
            raise ValueError(f"SET algorithms must be asymmetric, got {bad or 'none'}")
        self.max_future_skew = max_future_skew
        if max_age is not None and max_age <= 0:
            raise ValueError("max_age must be positive (or None: no replay window)")
        self.max_age = max_age
        self.critical_members = frozenset(critical_subject_members)
        self.understood_members = frozenset(understood_members)
        self.clock = clock
        self.check_stream_events = check_stream_events
        self._registry = jose_registry(self.algorithms)

    # -- step 1: shape, before any key is looked up ----------------------------------------------
    def parse(self, token: str | bytes) -> ParsedSet:
        raw = token.encode() if isinstance(token, str) else bytes(token)
        raw = raw.strip()
        if not raw or len(raw) > MAX_SET_BYTES:
            raise InvalidRequest("the body is not a SET of acceptable size")
        try:
            obj = jws.extract_compact(raw, registry=self._registry)
        except (JoseError, ValueError, TypeError, RecursionError) as exc:  # RecursionError: nested header
            raise InvalidRequest("the body is not a compact JWS") from exc
        header = dict(obj.protected)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower().removeprefix("application/") != SET_TYP:
            raise InvalidRequest(f"the JOSE header typ must be {SET_TYP}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidKey(f"signing algorithm {alg!r} is not accepted")
        if "crit" in header or "b64" in header:
            raise InvalidRequest("critical JOSE header parameters are not supported")
        if "kid" in header and not isinstance(header["kid"], str):
            raise InvalidRequest("kid must be a string")
        try:
            claims = json.loads(obj.payload)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequest("the SET payload is not JSON") from exc
        if not isinstance(claims, dict):
            raise InvalidRequest("the SET payload must be a JSON object")
        if claims.get("iss") != self.issuer:
            raise InvalidIssuer(f"iss {str(claims.get('iss'))[:200]!r} is not this stream's issuer")
        return ParsedSet(raw.decode("ascii", "replace"), header, claims, obj)

    # -- step 2: signature, then claims --------------------------------------------------------------
    def verify(self, parsed: ParsedSet, keys: Iterable[Key]) -> ReceivedEvent:
        """Check the signature with ``keys`` (the candidates for ``kid``) and every claim."""
        candidates = [k for k in keys if parsed.kid is None or k.kid == parsed.kid]
        if not candidates:
            raise InvalidKey(f"no key with kid {parsed.kid!r} in the transmitter's JWKS")
        if not signature_ok(parsed.signature, candidates, self._registry):
            raise InvalidKey("the signature does not verify")
        return self._check_claims(parsed)

    def verify_token(self, token: str | bytes, keys: KeySet | Iterable[Key]) -> ReceivedEvent:
        """:meth:`parse` then :meth:`verify`, for keys already at hand."""
        parsed = self.parse(token)
        return self.verify(parsed, list(keys))

    def _check_claims(self, parsed: ParsedSet) -> ReceivedEvent:
        claims = parsed.claims
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud
        if not isinstance(auds, list) or not all(isinstance(a, str) for a in auds):
            raise InvalidAudience("aud is missing or malformed")
        if self.audiences.isdisjoint(auds):
            raise InvalidAudience("aud does not name this receiver")
        for banned in ("sub", "exp"):
            if banned in claims:
                raise InvalidRequest(f"an SSF SET must not carry {banned} (R-SET-9, R-SET-10)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 1024:
            raise InvalidRequest("jti must be a non-empty string")
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, int | float) or iat != iat:
            raise InvalidRequest("iat must be a NumericDate")
        now = self.clock()
        if iat > now + self.max_future_skew:
            raise InvalidRequest("iat is in the future")
        if self.max_age is not None and iat < now - self.max_age:
            raise InvalidRequest("SET is older than the replay window")
        txn = claims.get("txn")
        if txn is not None and not isinstance(txn, str):
            raise InvalidRequest("txn must be a string")
        events = _events(claims.get("events"))
        subject = self._subject(claims, events)
        if self.check_stream_events:
            _check_ssf_event(events)
        return ReceivedEvent(
            iss=self.issuer,
            jti=jti,
            iat=float(iat),
            aud=tuple(auds),
            subject=subject,
            events=events,
            txn=txn,
            token=parsed.token,
            claims=dict(claims),
        )

    def _subject(self, claims: Mapping[str, Any], events: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        raw = claims.get("sub_id")
        if raw is None:  # AMB-3: legacy peers put the subject inside the event
            raw = next((e["subject"] for e in events.values() if "subject" in e), None)
            if raw is None and set(events) <= _STREAM_EVENTS:
                # SSE ID1 (2021): stream events name no subject, the stream being the one
                # they arrive on (AMB-7). An empty subject says so.
                return {}
            if raw is None:
                raise InvalidRequest("the SET has no sub_id (R-SET-11)")
        try:
            subject = validate_subject(raw, path="sub_id")
        except InvalidSubject as exc:
            raise InvalidRequest(str(exc)) from None
        if is_complex(subject):
            not_understood = sorted((set(members(subject)) & self.critical_members) - self.understood_members)
            if not_understood:  # R-SUB-9: discard the event
                raise InvalidRequest(
                    f"critical subject member(s) not understood: {', '.join(not_understood)}"
                )
        return subject


def jose_registry(algorithms: Iterable[str]) -> jws.JWSRegistry:
    """A JWS registry allowing exactly ``algorithms`` and tolerating unregistered header names."""
    return jws.JWSRegistry(algorithms=list(algorithms), strict_check_header=False)


def signature_ok(obj: jws.CompactSignature, keys: Iterable[Key], registry: jws.JWSRegistry) -> bool:
    """Whether any of ``keys`` verifies the signature (a key of the wrong type just fails)."""
    for key in keys:
        try:
            with warnings.catch_warnings():
                # joserfc flags EdDSA as deprecated (RFC 9864); transmitters may still use it.
                warnings.filterwarnings("ignore", message="EdDSA is deprecated")
                if jws.validate_compact(obj, key, registry=registry):
                    return True
        except (JoseError, ValueError, TypeError):
            continue
    return False


def _events(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        raise InvalidRequest("events must be a non-empty JSON object (R-SET-6)")
    out: dict[str, dict[str, Any]] = {}
    for uri, payload in raw.items():
        if not isinstance(payload, dict):
            raise InvalidRequest(f"the value of event {uri[:200]} must be a JSON object")
        out[canonical_event_type(uri)] = payload
    return out


def _check_ssf_event(events: Mapping[str, Mapping[str, Any]]) -> None:
    for uri, payload in events.items():
        # A null state is an absent one: some transmitters serialise an unset field as null.
        if payload.get("state") is not None and not isinstance(payload["state"], str):
            raise InvalidRequest("state must be a string")
        if uri == STREAM_UPDATED and payload.get("status") not in _STATUSES:
            raise InvalidRequest("stream-updated needs status enabled, paused or disabled (R-SSFEV-2)")
