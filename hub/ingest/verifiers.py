"""One SET verifier and one key source per trusted issuer, reusing the receivers library.

The checks themselves are :class:`receivers.verify.SetVerifier` (``typ``, the issuer's
algorithm allow-list, ``crit``, signature, ``aud``, ``iat`` skew, no ``sub``/``exp``, R-SEC-1..3)
and the keys come from :class:`receivers.jwks.JwksCache` (httpx, cached, refetched on an
unknown ``kid`` at most once per ``min_refetch_interval``) or a pinned
:class:`receivers.jwks.StaticKeys`. Keys are never taken from the token (``jku``, ``x5u``,
``jwk`` are ignored, R-SEC-2). A registration that changes gets fresh objects; one that does
not keeps its warm key cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from hub.core.issuers import TrustedIssuer
from receivers.jwks import JwksCache, KeySource, StaticKeys
from receivers.verify import SetVerifier


@dataclass(frozen=True, slots=True)
class IssuerVerifier:
    verifier: SetVerifier
    keys: KeySource


def _fingerprint(issuer: TrustedIssuer) -> str:
    jwks = None if issuer.jwks is None else dict(issuer.jwks)
    return json.dumps([issuer.jwks_uri, jwks, list(issuer.algorithms)], sort_keys=True)


class IssuerVerifiers:
    def __init__(
        self,
        *,
        audience: str,
        http: httpx.AsyncClient,
        max_future_skew: float = 60.0,
        max_age: float | None = None,
        min_refetch_interval: float = 10.0,
        jwks_max_age: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audience = audience
        self.http = http
        self.max_future_skew = max_future_skew
        self.max_age = max_age  # the ingest dedup window: older SETs could be accepted twice
        self.min_refetch_interval = min_refetch_interval
        self.jwks_max_age = jwks_max_age
        self.clock = clock
        self._by_iss: dict[str, tuple[str, IssuerVerifier]] = {}

    def for_issuer(self, issuer: TrustedIssuer) -> IssuerVerifier:
        """The verifier and keys of ``issuer``'s current registration."""
        fingerprint = _fingerprint(issuer)
        held = self._by_iss.get(issuer.iss)
        if held is not None and held[0] == fingerprint:
            return held[1]
        # The hub's limits for every issuer: clock skew, the replay window, our clock.
        limits: dict[str, Any] = {"max_future_skew": self.max_future_skew, "max_age": self.max_age}
        limits["clock"] = self.clock
        checks = SetVerifier(
            issuer=issuer.iss,
            audience=self.audience,
            algorithms=issuer.algorithms,
            # Stream events' claims are read by the dialect against their schemas, tolerantly
            # unless the issuer is strict (hub.core.tolerance), like every other event's.
            check_stream_events=False,
            **limits,
        )
        built = IssuerVerifier(checks, self._key_source(issuer))
        self._by_iss[issuer.iss] = (fingerprint, built)
        return built

    def _key_source(self, issuer: TrustedIssuer) -> KeySource:
        if issuer.jwks is not None:
            return StaticKeys(issuer.jwks)
        assert issuer.jwks_uri is not None  # parse_trusted_issuer guarantees one of the two
        return JwksCache(
            issuer.jwks_uri,
            http=self.http,
            max_age=self.jwks_max_age,
            min_refetch_interval=self.min_refetch_interval,
        )
