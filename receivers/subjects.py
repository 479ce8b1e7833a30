"""Subject identifiers (RFC 9493 + SSF 1.0 §3): validation, canonical keys and matching.

Part of the library's SSF vocabulary (with :mod:`receivers.events`): pure, no I/O, and the
one implementation that both a receiver and the ssf-hub transmitter use, so what a hub
routes to a stream is exactly what a receiver built on this library acts on.

Subjects stay plain JSON dicts. :func:`validate_subject` checks one against its format and
returns a normalized copy; :func:`subject_key` gives a canonical string for equality;
:func:`index_keys` lists the simple-identifier keys a subject is filed and looked up under;
:func:`subjects_match` is the SSF §8.1.3.1 matching rule.

Formats (R-SUB-2, R-SUB-5) and their members, all non-empty strings unless noted:
``account`` (uri, ``acct:``), ``email`` (email), ``iss_sub`` (iss, sub), ``opaque`` (id),
``phone_number`` (phone_number, E.164), ``did`` (url, ``did:``), ``uri`` (uri),
``jwt_id`` (iss, jti), ``saml_assertion_id`` (issuer, assertion_id), ``aliases`` (identifiers:
non-empty array of simple identifiers, no nested aliases), ``ip-addresses`` (ip-addresses:
non-empty array of IPv4/IPv6 strings) and ``complex`` (R-SUB-7).

Leniency toward older peers: ``phone``, ``jwt-id`` and ``saml-assertion-id`` are read as
``phone_number``, ``jwt_id`` and ``saml_assertion_id`` (AMB-4), and ``subject_type`` stands in
for a missing ``format`` (AMB-2); the returned dict always uses the current spelling.

Proprietary formats (R-SUB-6) cannot be checked member by member, since only the two parties
know them: any other format name is accepted when it has at least one member and every member
is a non-empty value (not null, "", [] or {}).

Matching (R-SUB-10, with the choices R-SUB-12 asks a transmitter to document):

- simple vs simple: identical canonical keys (email domains compare case-insensitively,
  R-SUB-4; everything else compares exactly);
- ``ip-addresses``: match when the two address sets share an address;
- ``aliases``: match when any of its identifiers matches;
- complex vs complex: every member name present in both must match, and at least one name
  must be shared (a missing member is a wildcard, so an event about ``{tenant: T}`` matches
  every subject with tenant T). Without the shared-name condition two complex subjects with
  disjoint members (``{tenant}`` vs ``{device}``) would match, and so every registration
  every event;
- simple vs complex (either side): match when any member of the complex subject matches the
  simple one. The member's name does not take part, so a registered email matches an event
  whose ``user`` is that email.

Every match implies a shared :func:`index_keys` entry, so a store can find candidate
registrations by key and then confirm with :func:`subjects_match`.

Internally (token and revocation indexes) a complex member may itself be ``aliases``, to say
"this user is both ``iss_sub`` X and email Y" inside one principal. Matching handles that; the
validator refuses it on the wire.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "ALIASES",
    "COMPLEX",
    "COMPLEX_MEMBER_NAMES",
    "FORMAT_MEMBERS",
    "IP_ADDRESSES",
    "KNOWN_FORMATS",
    "LEGACY_FORMATS",
    "InvalidSubject",
    "Subject",
    "canonical_format",
    "index_keys",
    "is_complex",
    "members",
    "subject_key",
    "subjects_match",
    "validate_subject",
]

Subject = Mapping[str, Any]

COMPLEX = "complex"
ALIASES = "aliases"
IP_ADDRESSES = "ip-addresses"

# Formats whose members are all plain strings (R-SUB-2, R-SUB-5).
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
KNOWN_FORMATS: frozenset[str] = frozenset(FORMAT_MEMBERS) | {ALIASES, IP_ADDRESSES, COMPLEX}
LEGACY_FORMATS: Mapping[str, str] = {  # AMB-4
    "phone": "phone_number",
    "jwt-id": "jwt_id",
    "saml-assertion-id": "saml_assertion_id",
}
COMPLEX_MEMBER_NAMES: tuple[str, ...] = (  # R-SUB-7; other names are allowed too
    "user",
    "device",
    "session",
    "application",
    "tenant",
    "org_unit",
    "group",
)

_DISCRIMINATORS = ("format", "subject_type")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_DID = re.compile(r"did:[a-z0-9]+:\S+")  # W3C DID syntax: did:<method>:<method-specific-id>
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")  # RFC 3986 scheme, then anything


class InvalidSubject(ValueError):
    """A subject identifier is malformed; the message names the offending member."""


def _invalid(path: str, message: str) -> InvalidSubject:
    return InvalidSubject(f"{path} {message}")


def canonical_format(subject: Mapping[str, Any]) -> str | None:
    """The subject's format with legacy discriminators and spellings resolved, or None."""
    fmt = subject.get("format", subject.get("subject_type"))
    if not isinstance(fmt, str):
        return None
    return LEGACY_FORMATS.get(fmt, fmt)


def members(subject: Mapping[str, Any]) -> dict[str, Any]:
    """Everything but the format discriminator (for complex subjects: the named members)."""
    return {k: v for k, v in subject.items() if k not in _DISCRIMINATORS}


def is_complex(subject: Mapping[str, Any]) -> bool:
    return canonical_format(subject) == COMPLEX


# ---------------------------------------------------------------------------------------------
# Validation


def validate_subject(obj: Any, *, allow_complex: bool = True, path: str = "subject") -> dict[str, Any]:
    """Check ``obj`` is a well-formed subject identifier and return a normalized copy.

    Raises :class:`InvalidSubject` naming the offending member (``path`` prefixes it,
    e.g. ``"sub_id"``). ``allow_complex=False`` refuses complex subjects (for contexts that
    take only a simple identifier).
    """
    return _validate(obj, path, allow_complex=allow_complex, allow_aliases=True)


def _validate(obj: Any, path: str, *, allow_complex: bool, allow_aliases: bool) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        raise _invalid(path, "must be a JSON object")
    subject = dict(obj)
    if "format" in subject:
        subject.pop("subject_type", None)  # AMB-2: prefer format when a peer sends both
    elif "subject_type" in subject:
        subject["format"] = subject.pop("subject_type")
    else:
        raise _invalid(path, "must have a format member")
    fmt = subject["format"]
    if not isinstance(fmt, str) or not fmt:
        raise _invalid(f"{path}.format", "must be a non-empty string")
    fmt = subject["format"] = LEGACY_FORMATS.get(fmt, fmt)

    if fmt == COMPLEX:
        if not allow_complex:
            raise _invalid(path, "must be a simple subject identifier, not complex")
        return _validate_complex(subject, path)
    if fmt == ALIASES:
        if not allow_aliases:
            raise _invalid(path, "must be a simple subject identifier, not aliases")
        return _validate_aliases(subject, path)
    if fmt == IP_ADDRESSES:
        return _validate_ip_addresses(subject, path)
    if fmt in FORMAT_MEMBERS:
        _check_string_members(subject, FORMAT_MEMBERS[fmt], path)
        _FORMAT_CHECKS.get(fmt, _no_check)(subject, path)
        return subject
    return _validate_proprietary(subject, path)


def _check_members(subject: Mapping[str, Any], expected: Iterable[str], path: str) -> None:
    """R-SUB-1: exactly the members the format defines, none missing, none extra."""
    want = set(expected)
    have = set(members(subject))
    fmt = subject["format"]
    if missing := sorted(want - have):
        raise _invalid(path, f"({fmt}) is missing member(s) {', '.join(missing)}")
    if extra := sorted(have - want):
        raise _invalid(path, f"({fmt}) has member(s) the format does not define: {', '.join(extra)}")


def _check_string_members(subject: Mapping[str, Any], names: tuple[str, ...], path: str) -> None:
    _check_members(subject, names, path)
    for name in names:
        value = subject[name]
        if not isinstance(value, str) or not value:
            raise _invalid(f"{path}.{name}", "must be a non-empty string")


def _no_check(subject: Mapping[str, Any], path: str) -> None:
    return None


def _check_account(subject: Mapping[str, Any], path: str) -> None:
    uri: str = subject["uri"]
    # URI schemes are case-insensitive (RFC 3986 §3.1).
    if uri[:5].lower() != "acct:" or len(uri) == 5:
        raise _invalid(f"{path}.uri", "must be an acct: URI (RFC 7565)")


def _check_email(subject: Mapping[str, Any], path: str) -> None:
    # rpartition: a quoted local part may itself contain "@"; the domain never does.
    local, at, domain = subject["email"].rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in domain):
        raise _invalid(f"{path}.email", "must be an email address (local@domain)")


def _check_phone(subject: Mapping[str, Any], path: str) -> None:
    if not _E164.fullmatch(subject["phone_number"]):
        raise _invalid(f"{path}.phone_number", "must be an E.164 number such as +12065550100")


def _check_did(subject: Mapping[str, Any], path: str) -> None:
    if not _DID.fullmatch(subject["url"]):
        raise _invalid(f"{path}.url", "must be a DID URL (did:<method>:<id>)")


def _check_uri(subject: Mapping[str, Any], path: str) -> None:
    if not _URI.fullmatch(subject["uri"]):
        raise _invalid(f"{path}.uri", "must be a URI with a scheme")


_FORMAT_CHECKS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "account": _check_account,
    "email": _check_email,
    "phone_number": _check_phone,
    "did": _check_did,
    "uri": _check_uri,
}


def _validate_aliases(subject: dict[str, Any], path: str) -> dict[str, Any]:
    _check_members(subject, ("identifiers",), path)
    identifiers = subject["identifiers"]
    if not isinstance(identifiers, list) or not identifiers:
        raise _invalid(f"{path}.identifiers", "must be a non-empty array of subject identifiers")
    subject["identifiers"] = [
        _validate(item, f"{path}.identifiers[{i}]", allow_complex=False, allow_aliases=False)
        for i, item in enumerate(identifiers)
    ]
    return subject


def _validate_ip_addresses(subject: dict[str, Any], path: str) -> dict[str, Any]:
    _check_members(subject, (IP_ADDRESSES,), path)
    addresses = subject[IP_ADDRESSES]
    if not isinstance(addresses, list) or not addresses:
        raise _invalid(f"{path}.{IP_ADDRESSES}", "must be a non-empty array of IP addresses")
    for i, address in enumerate(addresses):
        try:
            if not isinstance(address, str):
                raise ValueError(address)  # ipaddress would also take an int
            ipaddress.ip_address(address)
        except ValueError:
            raise _invalid(f"{path}.{IP_ADDRESSES}[{i}]", "must be an IPv4 or IPv6 address") from None
    subject[IP_ADDRESSES] = list(addresses)
    return subject


def _validate_complex(subject: dict[str, Any], path: str) -> dict[str, Any]:
    named = members(subject)
    if not named:
        raise _invalid(path, "(complex) must have at least one member")
    for name, member in named.items():
        if not name:
            raise _invalid(path, "(complex) member names must be non-empty")
        # R-SUB-7: each member is a simple identifier; aliases are not accepted either, to keep
        # "member identical" comparisons a plain key comparison.
        subject[name] = _validate(member, f"{path}.{name}", allow_complex=False, allow_aliases=False)
    return subject


def _validate_proprietary(subject: dict[str, Any], path: str) -> dict[str, Any]:
    named = members(subject)
    if not named:
        raise _invalid(path, f"({subject['format']}) must have at least one member")
    for name, value in named.items():
        if value is None or value in ("", [], {}):
            raise _invalid(f"{path}.{name}", "must be a non-empty value")
        subject[name] = copy.deepcopy(value)
    return subject


# ---------------------------------------------------------------------------------------------
# Canonical keys and matching


def _canonical_ip(address: Any) -> Any:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address  # unvalidated input: compare it as given rather than fail


def _canonical(subject: Mapping[str, Any]) -> dict[str, Any]:
    fmt = canonical_format(subject)
    out: dict[str, Any] = members(subject)
    out["format"] = fmt
    if fmt == "email" and isinstance(out.get("email"), str):
        local, at, domain = out["email"].rpartition("@")
        out["email"] = local + at + domain.lower()  # R-SUB-4: only the domain is case-insensitive
    elif fmt == IP_ADDRESSES and isinstance(out.get(IP_ADDRESSES), list):
        out[IP_ADDRESSES] = sorted({_canonical_ip(a) for a in out[IP_ADDRESSES]})
    elif fmt == ALIASES and isinstance(out.get("identifiers"), list):
        out["identifiers"] = sorted({subject_key(i) for i in out["identifiers"] if isinstance(i, Mapping)})
    elif fmt == COMPLEX:
        out = {name: _canonical(m) if isinstance(m, Mapping) else m for name, m in out.items()}
        out["format"] = COMPLEX
    return out


def subject_key(subject: Mapping[str, Any]) -> str:
    """A canonical string: two subjects have the same key iff they name the same identifier.

    Expects a subject that passed :func:`validate_subject`.
    """
    return json.dumps(_canonical(subject), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def index_keys(subject: Mapping[str, Any]) -> list[str]:
    """The simple-identifier keys under which a subject is filed and looked up, deduplicated.

    simple: its own key; ``ip-addresses``: one key per address; ``aliases``: the keys of each
    identifier; complex: the keys of each member (the member name is not part of the key).
    """
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


def _simple_match(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    # Equal keys for ordinary formats; shared address for ip-addresses; any identifier for aliases.
    return not set(index_keys(a)).isdisjoint(index_keys(b))


def _complex_members(subject: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {k: v for k, v in members(subject).items() if isinstance(v, Mapping)}


def subjects_match(registered: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether an event about ``event`` concerns a stream that registered ``registered``.

    SSF §8.1.3.1 (R-SUB-10) plus the choices in the module docstring. Symmetric.
    """
    r_complex, e_complex = is_complex(registered), is_complex(event)
    if r_complex and e_complex:
        r_members, e_members = _complex_members(registered), _complex_members(event)
        common = r_members.keys() & e_members.keys()
        return bool(common) and all(_simple_match(r_members[n], e_members[n]) for n in common)
    if r_complex:
        return any(_simple_match(m, event) for m in _complex_members(registered).values())
    if e_complex:
        return any(_simple_match(registered, m) for m in _complex_members(event).values())
    return _simple_match(registered, event)
