"""Which certificates outgoing HTTPS trusts: the system's, plus the operator's private CA.

Every outgoing HTTPS request of the hub (issuers' JWKS, upstream transmitters, OAuth token
endpoints, push) uses :func:`outbound_tls`: the system trust store, and the certificates in
``tls_ca_file`` (``SSF_HUB_TLS_CA_FILE``) on top, for an identity provider or a receiver behind
a private CA. ``SSL_CERT_FILE`` would *replace* the system store; this adds to it.
"""

from __future__ import annotations

import ssl

import certifi

from hub.config import Settings
from hub.errors import ConfigError


def outbound_tls(settings: Settings) -> ssl.SSLContext:
    """The TLS context for outgoing requests (certificates checked, host names checked)."""
    context = ssl.create_default_context()
    # httpx's own default is certifi's bundle, aiohttp's the system store: trust both, so a
    # peer that worked before keeps working whichever client carries the request.
    context.load_verify_locations(cafile=certifi.where())
    if settings.tls_ca_file:
        try:
            context.load_verify_locations(cafile=settings.tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"tls_ca_file {settings.tls_ca_file}: cannot load certificates: {exc}"
            ) from None
    return context
