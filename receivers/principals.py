"""Which subjects a token speaks for, read from its claims (pure).

A token is filed under every principal it acts for, so that an event about any of them finds
it (see :mod:`receivers.tokens`):

- **the user** (``sub``): one complex subject. Its ``user`` member names the user by every
  identifier the claims give (``iss_sub`` from ``iss``+``sub``, ``email`` from the ``email``
  claim or an email-shaped ``sub``, ``uri`` for a URI-shaped ``sub`` such as a SPIFFE ID), as
  ``aliases`` when there are several. ``session`` (from ``sid``) and ``tenant`` (from ``tid``,
  ``tenant_id``, ``tenant`` or ``org_id``) are added as members, so a session-revoked about
  another session of the same user does not match, while one about the user, or a
  tenant-wide event, does (SSF complex-subject rules, R-SUB-10);
- **every actor** of an RFC 8693 ``act`` chain (token exchange: an agent acting for the user),
  as ``iss_sub`` and, for URI-shaped ``sub``, ``uri`` (SPIFFE/WIMSE workload identities);
- **the requesting workload** of a Txn-Token (``req_wl``, R-TXN-2; also the older
  ``rctx.req_wl`` array, AMB-20): ``uri`` when URI-shaped, else ``opaque``;
- **the OAuth client** (``client_id`` or ``azp``) when it differs from ``sub``:
  ``{"format": "complex", "application": {"format": "opaque", "id": ...}}``.

Txn-Tokens may omit ``iss`` (R-TXN-2); pass ``issuer`` (the Transaction Token Service) to
still get ``iss_sub`` identifiers, otherwise ``sub`` is filed as ``opaque``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

__all__ = ["TENANT_CLAIMS", "principals_from_claims", "unverified_claims"]

TENANT_CLAIMS: tuple[str, ...] = ("tid", "tenant_id", "tenant", "org_id")
_URI_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+|urn:\S+")
_EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS without checking anything; ``{}`` for an opaque token.

    Only for tokens this process obtained itself (an agent indexing its own cache) or that an
    upstream layer already verified. Never for deciding whether to trust a caller.
    """
    try:
        obj = jws.extract_compact(token.strip().encode())
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, TypeError, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _one_or_aliases(ids: list[dict[str, Any]]) -> dict[str, Any] | None:
    unique = list({json.dumps(i, sort_keys=True): i for i in ids}.values())
    if not unique:
        return None
    return unique[0] if len(unique) == 1 else {"format": "aliases", "identifiers": unique}


def _identifiers(sub: str, iss: str | None, email: str | None = None) -> list[dict[str, Any]]:
    ids: list[dict[str, Any]] = []
    if iss:
        ids.append({"format": "iss_sub", "iss": iss, "sub": sub})
    if _URI_LIKE.fullmatch(sub):
        ids.append({"format": "uri", "uri": sub})
    if email:
        ids.append({"format": "email", "email": email})
    elif _EMAIL_LIKE.fullmatch(sub):
        ids.append({"format": "email", "email": sub})
    if not ids:
        ids.append({"format": "opaque", "id": sub})
    return ids


def _workloads(claims: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    req_wl = claims.get("req_wl")
    rctx = claims.get("rctx")
    legacy = rctx.get("req_wl") if isinstance(rctx, Mapping) else None
    for value in (req_wl, legacy):
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, str) and v)
    return found


def _actors(claims: Mapping[str, Any], iss: str | None) -> Iterable[tuple[str, str | None]]:
    act = claims.get("act")
    depth = 0
    while isinstance(act, Mapping) and depth < 16:
        sub = _str(act.get("sub"))
        if sub:
            yield sub, _str(act.get("iss")) or iss
        act = act.get("act")
        depth += 1


def principals_from_claims(claims: Mapping[str, Any], *, issuer: str | None = None) -> list[dict[str, Any]]:
    """The subjects a token with these claims speaks for (see the module docstring)."""
    iss = _str(claims.get("iss")) or issuer
    out: list[dict[str, Any]] = []
    sub = _str(claims.get("sub"))
    if sub:
        principal: dict[str, Any] = {"format": "complex"}
        user = _one_or_aliases(_identifiers(sub, iss, _str(claims.get("email"))))
        if user is not None:
            principal["user"] = user
        sid = _str(claims.get("sid"))
        if sid:
            principal["session"] = {"format": "opaque", "id": sid}
        tenant = next((t for t in (_str(claims.get(n)) for n in TENANT_CLAIMS) if t), None)
        if tenant:
            principal["tenant"] = {"format": "opaque", "id": tenant}
        out.append(principal)
    for actor, actor_iss in _actors(claims, iss):
        subject = _one_or_aliases(_identifiers(actor, actor_iss))
        if subject is not None:
            out.append(subject)
    for workload in _workloads(claims):
        kind = {"format": "uri", "uri": workload} if _URI_LIKE.fullmatch(workload) else None
        out.append(kind or {"format": "opaque", "id": workload})
    client = _str(claims.get("client_id")) or _str(claims.get("azp"))
    if client and client != sub:
        out.append({"format": "complex", "application": {"format": "opaque", "id": client}})
    return out
