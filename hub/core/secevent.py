"""Security Event Tokens as the hub issues them (RFC 8417 with the SSF 1.0 profile).

The claims are built here; signing is the key ring's job. Rules applied:
one event per SET (R-SET-7), a top-level ``sub_id`` (R-SET-11), ``aud`` always
present (AMB-14), no ``sub`` and no ``exp`` (R-SET-9, R-SET-10), ``txn`` shared by
every SET born of the same cause (R-SET-5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.core.events import validate_event
from hub.core.subjects import validate_subject
from hub.errors import InvalidEvent
from receivers.events import CATALOGUE

SET_TYP = "secevent+jwt"
SET_MEDIA_TYPE = "application/secevent+jwt"


def build_set_claims(
    *,
    iss: str,
    aud: str,
    jti: str,
    iat: int,
    event_uri: str,
    event_claims: Mapping[str, Any],
    sub_id: Mapping[str, Any],
    txn: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": iss, "jti": jti, "iat": iat, "aud": aud}
    if txn is not None:
        claims["txn"] = txn
    claims["sub_id"] = dict(sub_id)
    claims["events"] = {event_uri: dict(event_claims)}
    if extra:
        for name, value in extra.items():
            if name in claims or name in {"sub", "exp"}:
                raise InvalidEvent(f"claim {name} cannot be set as an extension")
            claims[name] = value
    return claims


def check_set_claims(claims: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Check a SET payload against R-SET-1..11; return (event URI, event claims).

    Used on SETs the hub is about to sign, as a last line of defence, and in tests.
    """
    for name in ("iss", "jti", "iat", "events", "sub_id"):
        if name not in claims:
            raise InvalidEvent(f"SET lacks the {name} claim")
    for name in ("sub", "exp"):
        if name in claims:
            raise InvalidEvent(f"an SSF SET must not carry {name}")
    if not isinstance(claims["iat"], int) or isinstance(claims["iat"], bool):
        raise InvalidEvent("iat must be a NumericDate in whole seconds")
    events = claims["events"]
    if not isinstance(events, Mapping) or len(events) != 1:
        raise InvalidEvent("events must hold exactly one event")
    ((uri, payload),) = events.items()
    if not isinstance(payload, Mapping):
        raise InvalidEvent("the event value must be a JSON object")
    subject = validate_subject(claims["sub_id"])
    event_type = CATALOGUE.get(uri)
    if event_type is not None:
        validate_event(event_type, payload, subject)
    return uri, dict(payload)
