"""Transmitter configuration metadata (R-DISC-1..7)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

WELL_KNOWN = "/.well-known/ssf-configuration"

# Relative to the issuer URL; receivers discover them from the metadata (AMB-1).
CONFIGURATION_PATH = "/ssf/stream"
STATUS_PATH = "/ssf/status"
ADD_SUBJECT_PATH = "/ssf/subjects:add"
REMOVE_SUBJECT_PATH = "/ssf/subjects:remove"
VERIFICATION_PATH = "/ssf/verify"
POLL_PATH = "/ssf/poll"
JWKS_PATH = "/ssf/jwks.json"
INGEST_PATH = "/ssf/ingest"
ADMIN_PATH = "/ssf/admin"
RECEIPTS_PATH = "/ssf/receipts"  # remediation receipts, a hub extension (hub.core.remediation)


def issuer_path(issuer: str) -> str:
    """The issuer's path without a trailing slash ("" for a bare host)."""
    return urlsplit(issuer).path.rstrip("/")


def well_known_path(issuer: str) -> str:
    """R-DISC-1: insert the well-known segment between host and path."""
    return WELL_KNOWN + issuer_path(issuer)


def metadata(
    issuer: str,
    *,
    delivery_methods: Sequence[str],
    default_subjects: str,
    critical_subject_members: Sequence[str] = (),
) -> dict[str, Any]:
    base = issuer.rstrip("/")
    out: dict[str, Any] = {
        "spec_version": "1_0",
        "issuer": base,
        "jwks_uri": base + JWKS_PATH,
        "delivery_methods_supported": list(delivery_methods),
        "configuration_endpoint": base + CONFIGURATION_PATH,
        "status_endpoint": base + STATUS_PATH,
        "add_subject_endpoint": base + ADD_SUBJECT_PATH,
        "remove_subject_endpoint": base + REMOVE_SUBJECT_PATH,
        "verification_endpoint": base + VERIFICATION_PATH,
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}, {"spec_urn": "urn:ietf:rfc:6750"}],
        "default_subjects": default_subjects,
    }
    if not delivery_methods:  # R-DISC-5: omit empty arrays (this claim is only RECOMMENDED)
        del out["delivery_methods_supported"]
    if critical_subject_members:  # R-DISC-5: omit empty arrays
        out["critical_subject_members"] = list(critical_subject_members)
    return out
