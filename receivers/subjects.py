"""Subject identifiers (RFC 9493 + SSF 1.0 §3): checking, canonical keys and matching.

This is the receivers' own implementation (``receivers`` never imports ``hub``), kept
consistent with the ssf-hub transmitter so that what a hub routes to a stream is also what
a receiver built on this library acts on.

Checking (:func:`validate_subject`, used on a SET's ``sub_id``): every RFC 9493 and SSF format
with exactly its members (R-SUB-1, -2, -5); ``aliases`` of simple identifiers; ``complex``
subjects whose members are simple identifiers (R-SUB-7); proprietary formats (R-SUB-6) with at
least one non-empty member. Older peers: ``subject_type`` for ``format`` (AMB-2) and the
spellings ``phone``, ``jwt-id``, ``saml-assertion-id`` (AMB-4).

Matching (:func:`subjects_match`; R-SUB-10, plus the choices R-SUB-12 asks to document, which
are the hub's):

- simple vs simple: identical, except that email domains compare case-insensitively (R-SUB-4);
  ``ip-addresses`` match when they share an address; ``aliases`` match when any identifier does;
- complex vs complex: every member name present in both must match, and at least one name must
  be shared (a missing member is a wildcard, so an event about ``{tenant: T}`` matches every
  subject with tenant T, and a registered ``{user, device}`` matches an event with only
  ``user``);
- simple vs complex: match when any member matches; the member's name plays no part, so an
  event about an email matches a complex subject whose ``user`` is that email.

Internally (token and revocation indexes) a complex member may itself be ``aliases``, to say
"this user is both ``iss_sub`` X and email Y" inside one principal. Matching handles that; the
checker refuses it on the wire, as the hub does.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "COMPLEX_MEMBER_NAMES",
    "InvalidSubject",
    "Subject",
    "index_keys",
    "is_complex",
    "subject_key",
    "subjects_match",
    "validate_subject",
]

Subject = Mapping[str, Any]

COMPLEX = "complex"
ALIASES = "aliases"
IP_ADDRESSES = "ip-addresses"

FORMAT_MEMBERS: Mapping[str, tuple[str, ...]] = {
    "account": ("uri",),
    "email": ("email",),
    "iss_sub": ("iss", "sub"),
    "opaque": ("id",),
    "phone_number": ("phone_number",),
    "did": ("url",),
    "uri": ("uri",),
    "jwt_id": ("iss", "jti"),
    "saml_assertion_id": ("issuer", "assertion_id"),
}
LEGACY_FORMATS: Mapping[str, str] = {
    "phone": "phone_number",
    "jwt-id": "jwt_id",
    "saml-assertion-id": "saml_assertion_id",
}
COMPLEX_MEMBER_NAMES: frozenset[str] = frozenset(
    {"user", "device", "session", "application", "tenant", "org_unit", "group"}
)
_DISCRIMINATORS = ("format", "subject_type")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_DID = re.compile(r"did:[a-z0-9]+:\S+")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")


class InvalidSubject(ValueError):
    """A subject identifier is malformed; the message names the offending member."""


def canonical_format(subject: Subject) -> str | None:
    fmt = subject.get("format", subject.get("subject_type"))
    return LEGACY_FORMATS.get(fmt, fmt) if isinstance(fmt, str) else None


def members(subject: Subject) -> dict[str, Any]:
    return {k: v for k, v in subject.items() if k not in _DISCRIMINATORS}


def is_complex(subject: Subject) -> bool:
    return canonical_format(subject) == COMPLEX


# --------------------------------------------------------------------------------------------
# Checking


def validate_subject(obj: Any, *, path: str = "sub_id") -> dict[str, Any]:
    """Check a subject identifier and return a normalized copy (current format spellings).

    Raises :class:`InvalidSubject`.
    """
    return _validate(obj, path, nested=False)


def _validate(obj: Any, path: str, *, nested: bool) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise InvalidSubject(f"{path} must be a JSON object")
    subject = dict(obj)
    if "format" in subject:
        subject.pop("subject_type", None)
    elif "subject_type" in subject:
        subject["format"] = subject.pop("subject_type")
    else:
        raise InvalidSubject(f"{path} must have a format member")
    fmt = subject["format"]
    if not isinstance(fmt, str) or not fmt:
        raise InvalidSubject(f"{path}.format must be a non-empty string")
    fmt = subject["format"] = LEGACY_FORMATS.get(fmt, fmt)
    if fmt == COMPLEX:
        if nested:
            raise InvalidSubject(f"{path} must be a simple subject identifier")
        return _validate_complex(subject, path)
    if fmt == ALIASES:
        if nested:
            raise InvalidSubject(f"{path} must be a simple subject identifier, not aliases")
        return _validate_aliases(subject, path)
    if fmt == IP_ADDRESSES:
        return _validate_ip_addresses(subject, path)
    if fmt in FORMAT_MEMBERS:
        _exact_members(subject, FORMAT_MEMBERS[fmt], path)
        for name in FORMAT_MEMBERS[fmt]:
            if not isinstance(subject[name], str) or not subject[name]:
                raise InvalidSubject(f"{path}.{name} must be a non-empty string")
        _check_syntax(fmt, subject, path)
        return subject
    named = members(subject)  # R-SUB-6: a format agreed out of band
    if not named or any(v is None or v in ("", [], {}) for v in named.values()):
        raise InvalidSubject(f"{path} ({fmt}) must have non-empty members")
    return subject


def _validate_complex(subject: dict[str, Any], path: str) -> dict[str, Any]:
    named = members(subject)
    if not named:
        raise InvalidSubject(f"{path} (complex) must have at least one member")
    for name, member in named.items():
        subject[name] = _validate(member, f"{path}.{name}", nested=True)
    return subject


def _validate_aliases(subject: dict[str, Any], path: str) -> dict[str, Any]:
    _exact_members(subject, ("identifiers",), path)
    ids = subject["identifiers"]
    if not isinstance(ids, list) or not ids:
        raise InvalidSubject(f"{path}.identifiers must be a non-empty array")
    subject["identifiers"] = [
        _validate(item, f"{path}.identifiers[{n}]", nested=True) for n, item in enumerate(ids)
    ]
    return subject


def _validate_ip_addresses(subject: dict[str, Any], path: str) -> dict[str, Any]:
    _exact_members(subject, (IP_ADDRESSES,), path)
    addresses = subject[IP_ADDRESSES]
    if not isinstance(addresses, list) or not addresses:
        raise InvalidSubject(f"{path}.{IP_ADDRESSES} must be a non-empty array")
    for n, address in enumerate(addresses):
        if not isinstance(address, str) or not _is_ip(address):
            raise InvalidSubject(f"{path}.{IP_ADDRESSES}[{n}] must be an IPv4 or IPv6 address")
    return subject


def _exact_members(subject: Subject, expected: tuple[str, ...], path: str) -> None:
    have, want = set(members(subject)), set(expected)
    if have != want:
        detail = ", ".join(sorted(want - have)) or ", ".join(sorted(have - want))
        raise InvalidSubject(
            f"{path} ({subject['format']}) must have exactly {', '.join(expected)}: {detail}"
        )


def _check_syntax(fmt: str, subject: Subject, path: str) -> None:
    if fmt == "email":
        local, at, domain = subject["email"].rpartition("@")
        ok = bool(at and local and domain) and not any(c.isspace() for c in domain)
    elif fmt == "account":
        ok = subject["uri"][:5].lower() == "acct:" and len(subject["uri"]) > 5
    elif fmt == "phone_number":
        ok = bool(_E164.fullmatch(subject["phone_number"]))
    elif fmt == "did":
        ok = bool(_DID.fullmatch(subject["url"]))
    elif fmt == "uri":
        ok = bool(_URI.fullmatch(subject["uri"]))
    else:
        ok = True
    if not ok:
        raise InvalidSubject(f"{path} is not a well-formed {fmt} identifier")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Keys and matching


def _canonical(subject: Subject) -> dict[str, Any]:
    fmt = canonical_format(subject)
    out = members(subject)
    out["format"] = fmt
    if fmt == "email" and isinstance(out.get("email"), str):
        local, at, domain = out["email"].rpartition("@")
        out["email"] = local + at + domain.lower()  # R-SUB-4
    elif fmt == IP_ADDRESSES and isinstance(out.get(IP_ADDRESSES), list):
        out[IP_ADDRESSES] = sorted(
            {str(ipaddress.ip_address(a)) if _is_ip(a) else a for a in out[IP_ADDRESSES]}
        )
    elif fmt == ALIASES and isinstance(out.get("identifiers"), list):
        out["identifiers"] = sorted({subject_key(i) for i in out["identifiers"] if isinstance(i, Mapping)})
    elif fmt == COMPLEX:
        out = {k: _canonical(v) if isinstance(v, Mapping) else v for k, v in out.items()}
        out["format"] = COMPLEX
    return out


def subject_key(subject: Subject) -> str:
    """A canonical string: equal keys mean the same identifier."""
    return json.dumps(_canonical(subject), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def index_keys(subject: Subject) -> list[str]:
    """The simple-identifier keys a subject is filed under; every match shares at least one."""
    fmt = canonical_format(subject)
    keys: list[str] = []
    if fmt in (COMPLEX, ALIASES):
        raw = list(members(subject).values()) if fmt == COMPLEX else subject.get("identifiers")
        for part in raw if isinstance(raw, list) else []:
            if isinstance(part, Mapping):
                keys.extend(index_keys(part))
    elif fmt == IP_ADDRESSES and isinstance(subject.get(IP_ADDRESSES), list):
        keys = [subject_key({"format": IP_ADDRESSES, IP_ADDRESSES: [a]}) for a in subject[IP_ADDRESSES]]
    else:
        keys = [subject_key(subject)]
    return list(dict.fromkeys(keys))


def _simple_match(a: Subject, b: Subject) -> bool:
    return not set(index_keys(a)).isdisjoint(index_keys(b))


def _named(subject: Subject) -> dict[str, Subject]:
    return {k: v for k, v in members(subject).items() if isinstance(v, Mapping)}


def subjects_match(a: Subject, b: Subject) -> bool:
    """Whether subject ``a`` and subject ``b`` concern the same principal (symmetric)."""
    a_complex, b_complex = is_complex(a), is_complex(b)
    if a_complex and b_complex:
        a_named, b_named = _named(a), _named(b)
        common = a_named.keys() & b_named.keys()
        return bool(common) and all(_simple_match(a_named[n], b_named[n]) for n in common)
    if a_complex:
        return any(_simple_match(m, b) for m in _named(a).values())
    if b_complex:
        return any(_simple_match(a, m) for m in _named(b).values())
    return _simple_match(a, b)
