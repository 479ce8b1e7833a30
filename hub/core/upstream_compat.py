"""Compatibility with transmitters that deviate from SSF 1.0 (issue #15), no I/O.

Without options an upstream link is strict. An operator who knows a transmitter's quirks
sets :class:`Compatibility` on the upstream: an ``expected_issuer`` when the metadata's
``issuer`` is not the URL it is served from (R-DISC-4 would refuse it), fields to add to or
omit from every stream write, how a push token is renewed, and where the push token goes.

The rest is read tolerantly whatever the options: ``null`` for an optional member is absent
(:func:`without_nulls`), and a peer's error body is shown whatever its shape
(:func:`peer_error_text`).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.core.inputs import parse_url
from hub.errors import InvalidRequest
from receivers.events import CATALOGUE

# What an upstream is asked for by default (intersected with the transmitter's events_supported
# where it lists them): the events after which a receiver must revoke or re-check access. Not
# session-established/presented, account-enabled or the RISC opt-in/recovery events: missing
# them takes no access away; and not the deprecated RISC sessions-revoked (CAEP's replaces it).
REVOCATION_EVENT_NAMES: tuple[str, ...] = (
    "session-revoked",
    "credential-change",
    "token-claims-change",
    "assurance-level-change",
    "device-compliance-change",
    "risk-level-change",
    "account-disabled",
    "account-purged",
    "account-credential-change-required",
    "credential-compromise",
    "identifier-changed",
    "identifier-recycled",
)


def revocation_events() -> tuple[str, ...]:
    return tuple(CATALOGUE.resolve(name).uri for name in REVOCATION_EVENT_NAMES)


# The hub owns these members of its stream; an operator's create field cannot override them.
RESERVED_FIELDS = frozenset({"stream_id", "delivery", "events_requested", "iss"})
# Receiver-supplied members a transmitter may refuse (SSF 1.0 §8.1.1).
OMITTABLE_FIELDS = frozenset({"description", "events_requested"})
MAX_CREATE_FIELDS = 10
MAX_FIELD_JSON = 2048
PEER_ERROR_LIMIT = 300  # shown to operators
PEER_ERROR_SCAN_LIMIT = 8192  # read for the event types a refusal names
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
# A peer may echo what we sent: never show a bearer token or a JWT from it.
_SECRETS = (
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"),
)
_URI = re.compile(r"(?:https?://|urn:)[^\s\"',;\]\[)(}{]+")


class RenewalStyle(enum.StrEnum):
    PATCH = "patch"  # PATCH {stream_id, delivery} (SSF 1.0 §8.1.1.3), the default
    REPLACE = "replace"  # PUT the whole receiver-supplied configuration (§8.1.1.4)
    RECREATE = "recreate"  # delete the stream and create a new one


class PushAuth(enum.StrEnum):
    AUTHORIZATION_HEADER = "authorization_header"  # SSF 1.0 delivery.authorization_header, "Bearer ..."
    # An extension some transmitters require: delivery.endpoint_url_token holds the bare token,
    # which they send back as "Authorization: Bearer <token>" on every push.
    ENDPOINT_URL_TOKEN = "endpoint_url_token"


@dataclass(frozen=True, slots=True)
class Compatibility:
    expected_issuer: str | None = None
    create_fields: Mapping[str, Any] = field(default_factory=dict)
    omit_fields: tuple[str, ...] = ()
    renewal: RenewalStyle = RenewalStyle.PATCH
    push_auth: PushAuth = PushAuth.AUTHORIZATION_HEADER

    def to_record(self) -> dict[str, Any]:
        return {
            "expected_issuer": self.expected_issuer,
            "create_fields": dict(self.create_fields),
            "omit_fields": list(self.omit_fields),
            "renewal": self.renewal.value,
            "push_auth": self.push_auth.value,
        }

    @classmethod
    def from_record(cls, data: Mapping[str, Any] | None) -> Compatibility:
        if not data:
            return cls()
        return cls(
            expected_issuer=data.get("expected_issuer"),
            create_fields=dict(data.get("create_fields") or {}),
            omit_fields=tuple(data.get("omit_fields") or ()),
            renewal=RenewalStyle(data.get("renewal", RenewalStyle.PATCH.value)),
            push_auth=PushAuth(data.get("push_auth", PushAuth.AUTHORIZATION_HEADER.value)),
        )

    def shape(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A stream write's body with the create fields added and the omitted fields removed."""
        out = {k: v for k, v in body.items() if k not in self.omit_fields}
        out.update(self.create_fields)
        return out


def parse_compatibility(value: Any) -> Compatibility:
    """The ``compatibility`` object of an add request (admin API and CLI share it)."""
    if value is None:
        return Compatibility()
    if not isinstance(value, Mapping):
        raise InvalidRequest("compatibility must be a JSON object")
    unknown = sorted(set(value) - {"expected_issuer", "create_fields", "omit_fields", "renewal", "push_auth"})
    if unknown:
        raise InvalidRequest(f"unknown compatibility option(s): {', '.join(unknown)}")
    expected = value.get("expected_issuer")
    if expected is not None:
        if not isinstance(expected, str) or not expected:
            raise InvalidRequest("expected_issuer must be the issuer URL the transmitter's metadata names")
        parts = parse_url(expected, what="expected_issuer")
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
            raise InvalidRequest("expected_issuer must be an http(s) URL without query or fragment")
    renewal = value.get("renewal", RenewalStyle.PATCH.value)
    if renewal not in {r.value for r in RenewalStyle}:
        raise InvalidRequest("renewal must be patch, replace or recreate")
    push_auth = value.get("push_auth", PushAuth.AUTHORIZATION_HEADER.value)
    if push_auth not in {p.value for p in PushAuth}:
        raise InvalidRequest("push_auth must be authorization_header or endpoint_url_token")
    return Compatibility(
        expected_issuer=expected,
        create_fields=_create_fields(value.get("create_fields")),
        omit_fields=_omit_fields(value.get("omit_fields")),
        renewal=RenewalStyle(renewal),
        push_auth=PushAuth(push_auth),
    )


def _create_fields(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or len(value) > MAX_CREATE_FIELDS:
        raise InvalidRequest(f"create_fields must be an object of at most {MAX_CREATE_FIELDS} members")
    for name, member in value.items():
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise InvalidRequest(f"create_fields: {name!r} is not a field name")
        if name in RESERVED_FIELDS:
            raise InvalidRequest(f"create_fields: the hub sets {name} itself")
        if member is None or len(json.dumps(member)) > MAX_FIELD_JSON:
            raise InvalidRequest(
                f"create_fields: {name} must be a JSON value of at most {MAX_FIELD_JSON} bytes"
            )
    return dict(value)


def _omit_fields(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    allowed = ", ".join(sorted(OMITTABLE_FIELDS))
    if not isinstance(value, list) or not all(isinstance(v, str) and v in OMITTABLE_FIELDS for v in value):
        raise InvalidRequest(f"omit_fields must be an array of: {allowed}")
    return tuple(dict.fromkeys(value))


def without_nulls(doc: Any) -> Any:
    """A peer's JSON object with ``null`` members dropped (in ``delivery`` too): an optional
    member sent as ``null`` is read as absent. Anything else is returned as it is."""
    if not isinstance(doc, Mapping):
        return doc
    out = {k: v for k, v in doc.items() if v is not None}
    delivery = out.get("delivery")
    if isinstance(delivery, Mapping):
        out["delivery"] = {k: v for k, v in delivery.items() if v is not None}
    return out


def peer_error_text(body: bytes, content_type: str = "", *, limit: int = PEER_ERROR_LIMIT) -> str:
    """One line saying why a peer refused, from whatever error body it sent: SSF/RFC 8935
    ``err``/``description``, OAuth ``error``/``error_description``, FastAPI ``detail`` (a
    string, or a list of ``{loc, msg}``; the echoed ``input`` is never shown), or plain text.
    Bearer tokens and JWTs are masked; the result is at most ``limit`` characters."""
    text = _error_text(body, content_type)
    for pattern in _SECRETS:
        text = pattern.sub("[redacted]", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_text(body: bytes, content_type: str) -> str:
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, Mapping):
        code = _first_string(doc, "err", "error")
        description = _first_string(doc, "description", "error_description", "message")
        detail = doc.get("detail")
        if description is None and detail is not None:
            description = _detail_text(detail)
        parts = [p for p in (code, description) if p]
        if parts:
            return ": ".join(parts)
    if doc is not None:
        return _short_json(doc)
    if "html" in content_type.lower():
        return re.sub(r"<[^>]+>", " ", body.decode("utf-8", "replace"))
    return body.decode("utf-8", "replace")


def _first_string(doc: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = doc.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _detail_text(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        items = []
        for item in detail:
            if isinstance(item, Mapping):
                loc = item.get("loc")
                where = ".".join(str(p) for p in loc) if isinstance(loc, list) else ""
                msg = item.get("msg")
                items.append(f"{where}: {msg}" if where else str(msg))
            else:
                items.append(str(item))
        return "; ".join(items)
    return _short_json(detail)


def _short_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))[:PEER_ERROR_SCAN_LIMIT]


def events_named(text: str, requested: Iterable[str]) -> set[str]:
    """The requested event types a peer's error text names (a refusal of some of them)."""
    wanted = set(requested)
    return {uri.rstrip(".") for uri in _URI.findall(text)} & wanted


def supported_events(metadata: Mapping[str, Any]) -> tuple[str, ...] | None:
    """``events_supported`` from a transmitter's metadata, where some list it; None when absent."""
    value = metadata.get("events_supported")
    if not isinstance(value, list):
        return None
    return tuple(v for v in value if isinstance(v, str))
