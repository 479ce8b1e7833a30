"""Check a SET the way a strict SSF receiver would (what the conformance suite checks)."""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet

ALGS = ["RS256", "ES256", "EdDSA"]


def verify_set(token: str, jwks: dict[str, Any], *, iss: str, aud: str) -> dict[str, Any]:
    """Verify typ, kid, signature, iss, aud, no sub/exp, sub_id and one event; return the claims."""
    import warnings

    keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated")
        decoded = jwt.decode(token, keys, algorithms=ALGS)
    header, claims = decoded.header, decoded.claims
    assert header["typ"] == "secevent+jwt", header  # R-SET-8
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}, header
    assert claims["iss"] == iss, claims  # R-SET-13
    assert claims["aud"] == aud or (isinstance(claims["aud"], list) and aud in claims["aud"]), claims
    assert "sub" not in claims and "exp" not in claims, claims  # R-SET-9, R-SET-10
    assert isinstance(claims["iat"], int) and isinstance(claims["jti"], str), claims  # R-SET-1
    assert isinstance(claims["sub_id"], dict) and "format" in claims["sub_id"], claims  # R-SET-11
    assert isinstance(claims["events"], dict) and len(claims["events"]) == 1, claims  # R-SET-7
    return dict(claims)


def event_of(claims: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((uri, payload),) = claims["events"].items()
    return uri, payload
