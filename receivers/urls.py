"""Which URLs a party to SSF may be sent to: https, and plain http only to this machine.

Part of the library's pure SSF vocabulary (R-SEC-4 asks for TLS; loopback http is for local
development and tests). Shared by discovery here and by the hub's issuer registry.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "url_allowed"]


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback IP literal (127.0.0.0/8, ::1)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_allowed(url: str, allow_http: bool | None = None) -> bool:
    """https always; http when ``allow_http`` is True, or None and the host is loopback."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # "http://[" and the like
        return False
    if not host:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or allow_http is False:
        return False
    return allow_http is True or is_loopback_host(host)
