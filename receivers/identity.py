"""Who is calling: the subjects behind a request's credentials.

A :class:`Caller` holds one :class:`Credential` per token presented — the bearer access token
(``Authorization: Bearer``, RFC 6750) and/or the Txn-Token (``Txn-Token`` header, R-TXN-7) —
each with the subjects it speaks for (:func:`~receivers.principals.principals_from_claims`)
and its ``iat``, which decides whether it predates a revocation.

Identities are async callables ``(headers) -> Caller | None``:

- :class:`BearerJwtIdentity` and :class:`TxnTokenIdentity` verify their token with a
  :class:`JwtVerifier` (signature against the issuer's keys, ``iss``, ``aud``, ``exp``, ``typ``;
  R-TXN-7 for Txn-Tokens). A token that fails raises :class:`~receivers.errors.TokenError`
  (the middleware answers ``401 invalid_token``). With ``verifier=None`` the claims are read
  without verification: only for services behind a gateway that has already verified them;
- :class:`AnyIdentity` combines several: the caller presents the union of their credentials;
- any function of yours with the same signature.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from receivers.caller import Caller, Credential
from receivers.errors import KeysUnavailable, TokenError
from receivers.jwks import KeySource
from receivers.principals import principals_from_claims, unverified_claims
from receivers.tokens import TokenKind, fingerprint
from receivers.verify import DEFAULT_ALGORITHMS, jose_registry, signature_ok

__all__ = [
    "AnyIdentity",
    "BearerJwtIdentity",
    "Caller",
    "Credential",
    "Identity",
    "JwtVerifier",
    "TxnTokenIdentity",
]


Identity = Callable[[Mapping[str, str]], Awaitable[Caller | None]]


class JwtVerifier:
    """Verifies a JWT (access token, Txn-Token, ID token) against an issuer's keys.

    ``issuer``: accepted ``iss`` values (None: any, for Txn-Tokens, whose ``iss`` is optional,
    R-TXN-2 — the keys pin the issuer then). ``audience``: ``aud`` must contain one of them
    (None: not checked). ``typ``: required JOSE ``typ`` (``at+jwt``, ``txntoken+jwt``), or None.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str | Collection[str] | None,
        audience: str | Collection[str] | None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        typ: str | None = None,
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.issuers = None if issuer is None else frozenset([issuer] if isinstance(issuer, str) else issuer)
        self.audiences = (
            None if audience is None else [audience] if isinstance(audience, str) else list(audience)
        )
        self.algorithms = tuple(algorithms)
        if not self.algorithms or any(
            a.lower() == "none" or a.upper().startswith("HS") for a in self.algorithms
        ):
            raise ValueError("token algorithms must be asymmetric")
        self.typ = typ
        self.leeway = leeway
        self.clock = clock
        self._registry = jose_registry(self.algorithms)

    async def verify(self, token: str) -> dict[str, object]:
        """The verified claims; raises :class:`~receivers.errors.TokenError`."""
        raw = token.strip().encode()
        try:
            obj = jws.extract_compact(raw)
        except (JoseError, ValueError, TypeError, RecursionError) as exc:
            raise TokenError("malformed token") from exc
        header = obj.protected
        typ = header.get("typ")
        if self.typ is not None and (
            not isinstance(typ, str) or typ.lower().removeprefix("application/") != self.typ
        ):
            raise TokenError(f"token typ must be {self.typ}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms or "crit" in header:
            raise TokenError("token algorithm or header not accepted")
        kid = header.get("kid")
        try:
            keys = await self.keys.keys_for(kid if isinstance(kid, str) else None)
        except KeysUnavailable as exc:
            raise TokenError(f"token signing key unavailable: {exc}") from exc
        if not signature_ok(obj, keys, self._registry):
            raise TokenError("token signature does not verify")
        claims = unverified_claims(token)  # now verified
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, object]) -> None:
        options: dict[str, ClaimsOption] = {"exp": {"essential": True}}
        if self.audiences is not None:
            options["aud"] = {"essential": True, "values": self.audiences}
        try:
            JWTClaimsRegistry(now=math.floor(self.clock()), leeway=self.leeway, **options).validate(claims)
        except JoseError as exc:
            raise TokenError(f"token claims not accepted: {exc.description or type(exc).__name__}") from exc
        iss = claims.get("iss")
        if self.issuers is not None and iss not in self.issuers:
            raise TokenError("token issuer not accepted")


def _credential(token: str, claims: Mapping[str, object], kind: TokenKind, issuer: str | None) -> Credential:
    iat = claims.get("iat")
    txn = claims.get("txn")
    return Credential(
        kind=kind,
        subjects=tuple(principals_from_claims(claims, issuer=issuer)),
        issued_at=float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None,
        fingerprint=fingerprint(token),
        txn=txn if isinstance(txn, str) else None,
    )


class BearerJwtIdentity:
    """The caller behind ``Authorization: Bearer <JWT>``; no header gives no caller."""

    kind = TokenKind.ACCESS

    def __init__(self, verifier: JwtVerifier | None, *, issuer: str | None = None) -> None:
        self.verifier = verifier
        self.issuer = issuer

    def token_of(self, headers: Mapping[str, str]) -> str | None:
        return bearer_token(headers)

    async def __call__(self, headers: Mapping[str, str]) -> Caller | None:
        token = self.token_of(headers)
        if token is None:
            return None
        claims = await self.verifier.verify(token) if self.verifier is not None else unverified_claims(token)
        if not claims:
            raise TokenError("the bearer token is not a JWT")
        return Caller((_credential(token, claims, self.kind, self.issuer),))


class TxnTokenIdentity(BearerJwtIdentity):
    """The caller behind a ``Txn-Token`` header (R-TXN-7): ``sub`` (the user) and ``req_wl``.

    ``issuer`` names the Transaction Token Service for Txn-Tokens that carry no ``iss``.
    """

    kind = TokenKind.TXN

    def token_of(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("txn-token", "").strip() or None


class AnyIdentity:
    """Every credential any of ``identities`` finds; None when none finds one."""

    def __init__(self, *identities: Identity) -> None:
        self.identities = identities

    async def __call__(self, headers: Mapping[str, str]) -> Caller | None:
        found: list[Credential] = []
        for identity in self.identities:
            caller = await identity(headers)
            if caller is not None:
                found.extend(caller.credentials)
        return Caller(tuple(found)) if found else None


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header (RFC 6750), if there is one."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
