"""Transmitter configuration metadata (R-DISC-1..6, AMB-1, AMB-10, AMB-11), parsed without I/O.

Where to look (:func:`well_known_urls`): ``/.well-known/ssf-configuration`` inserted between
the issuer's host and path (R-DISC-1), then the same appended after the path (some
deployments do that), then the legacy ``sse-configuration`` and ``risc-configuration`` names
(AMB-1). :func:`parse_metadata` refuses — so nothing unvalidated gets used (R-DISC-6) —
metadata whose ``issuer`` is not the URL we discovered from (R-DISC-4), without ``jwks_uri``
(this library only accepts signed SETs), or with non-https URLs. Plain ``http`` is accepted
for loopback hosts (local development against ``ssf-hub serve``), or everywhere with
``allow_http=True``; ``allow_http=False`` refuses it even for loopback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from receivers.errors import DiscoveryError
from receivers.urls import url_allowed

__all__ = [
    "POLL_METHOD",
    "PUSH_METHOD",
    "TransmitterMetadata",
    "parse_metadata",
    "url_allowed",
    "well_known_urls",
]

PUSH_METHOD = "urn:ietf:rfc:8935"
POLL_METHOD = "urn:ietf:rfc:8936"
_NAMES = ("ssf-configuration", "sse-configuration", "risc-configuration")
_ENDPOINTS = (
    "configuration_endpoint",
    "status_endpoint",
    "add_subject_endpoint",
    "remove_subject_endpoint",
    "verification_endpoint",
)


def well_known_urls(issuer: str) -> list[str]:
    """Candidate metadata URLs for ``issuer``, in the order they are tried."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")

    def at(p: str) -> str:
        return urlunsplit((parts.scheme, parts.netloc, p, "", ""))

    urls = [at(f"/.well-known/{_NAMES[0]}{path}")]
    if path:
        urls.append(at(f"{path}/.well-known/{_NAMES[0]}"))
    urls += [at(f"/.well-known/{name}{path}") for name in _NAMES[1:]]
    return urls


@dataclass(frozen=True)
class TransmitterMetadata:
    issuer: str
    jwks_uri: str
    spec_version: str = "1_0-ID1"  # absent means ID1 (R-DISC-4, AMB-10)
    delivery_methods_supported: tuple[str, ...] = ()
    configuration_endpoint: str | None = None
    status_endpoint: str | None = None
    add_subject_endpoint: str | None = None
    remove_subject_endpoint: str | None = None
    verification_endpoint: str | None = None
    critical_subject_members: tuple[str, ...] = ()
    default_subjects: str | None = None
    authorization_schemes: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _strings(doc: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = doc.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DiscoveryError(f"{name} must be an array of strings")
    return tuple(value)


def parse_metadata(doc: Any, *, issuer: str, allow_http: bool | None = None) -> TransmitterMetadata:
    """Validate a metadata document fetched for ``issuer``; raises :class:`DiscoveryError`."""
    if not isinstance(doc, Mapping):
        raise DiscoveryError("transmitter metadata must be a JSON object")
    found = doc.get("issuer")
    if not isinstance(found, str) or not _same_issuer(found, issuer):
        raise DiscoveryError(f"metadata issuer {found!r} is not the issuer {issuer!r} (R-DISC-4)")
    split = urlsplit(found)
    if split.query or split.fragment or not url_allowed(found, allow_http):
        raise DiscoveryError(f"issuer {found!r} must be an https URL without query or fragment")
    jwks_uri = doc.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not url_allowed(jwks_uri, allow_http):
        raise DiscoveryError("jwks_uri must be present and https (SETs are verified against it)")
    endpoints: dict[str, str | None] = {}
    for name in _ENDPOINTS:
        value = doc.get(name)
        if value is not None and (not isinstance(value, str) or not url_allowed(value, allow_http)):
            raise DiscoveryError(f"{name} must be an https URL")
        endpoints[name] = value
    schemes = doc.get("authorization_schemes", [])
    if not isinstance(schemes, list):
        raise DiscoveryError("authorization_schemes must be an array")
    spec_version = doc.get("spec_version", "1_0-ID1")
    default_subjects = doc.get("default_subjects")
    return TransmitterMetadata(
        issuer=found,
        jwks_uri=jwks_uri,
        spec_version=spec_version if isinstance(spec_version, str) else "1_0-ID1",
        delivery_methods_supported=_strings(doc, "delivery_methods_supported"),
        critical_subject_members=_strings(doc, "critical_subject_members"),
        default_subjects=default_subjects if default_subjects in ("ALL", "NONE") else None,
        authorization_schemes=tuple(
            s["spec_urn"] for s in schemes if isinstance(s, Mapping) and isinstance(s.get("spec_urn"), str)
        ),
        raw=dict(doc),
        configuration_endpoint=endpoints["configuration_endpoint"],
        status_endpoint=endpoints["status_endpoint"],
        add_subject_endpoint=endpoints["add_subject_endpoint"],
        remove_subject_endpoint=endpoints["remove_subject_endpoint"],
        verification_endpoint=endpoints["verification_endpoint"],
    )
