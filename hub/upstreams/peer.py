"""Talking to one upstream transmitter as it really behaves (issue #15).

:class:`UpstreamClient` is the receivers library's :class:`~receivers.client.StreamClient`
with three differences: every answer has its ``null`` members dropped (an optional string
sent as ``null`` is absent), a refusal carries the peer's error text whatever the body's
shape (:func:`~hub.core.upstream_compat.peer_error_text`), and stream writes take the whole
body, so an upstream's compatibility options can add or omit members.

:func:`discover` fetches the metadata like the library does (R-DISC-1, AMB-1), but checks its
``issuer`` against the operator's ``expected_issuer`` when one is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from hub.core.upstream_compat import PEER_ERROR_SCAN_LIMIT, peer_error_text, without_nulls
from hub.core.upstreams import Upstream
from receivers.client import StreamClient, StreamConfig, fetch_metadata_document
from receivers.discovery import TransmitterMetadata, parse_metadata
from receivers.errors import DiscoveryError, TransmitterError
from receivers.oauth import TokenSource

MAX_ISSUER_SHOWN = 512


class PeerRefusal(TransmitterError):
    """A transmitter's refusal; ``full_text`` is its error text before shortening for display."""

    def __init__(self, status: int, description: str, *, url: str, full_text: str) -> None:
        super().__init__(status, None, description, url=url)
        self.full_text = full_text


class UpstreamClient(StreamClient):
    async def write_stream(self, method: str, body: Mapping[str, Any]) -> StreamConfig:
        """POST (create), PATCH (update) or PUT (replace) ``body`` as it is."""
        expect = (201, 200) if method == "POST" else (200,)
        doc = await self._call(method, self._endpoint("configuration_endpoint"), body, expect=expect)
        return self._checked(doc)

    def _refusal(self, response: httpx.Response, url: str) -> Exception:
        """Any body shape a peer answers with, as one line (and the longer text for reading
        which event types it refused)."""
        content_type = response.headers.get("content-type", "")
        return PeerRefusal(
            response.status_code,
            peer_error_text(response.content, content_type),
            url=url,
            full_text=peer_error_text(response.content, content_type, limit=PEER_ERROR_SCAN_LIMIT),
        )

    def _document(self, response: httpx.Response) -> Any:
        return without_nulls(super()._document(response))  # null for an optional member reads as absent


async def discover(
    upstream: Upstream,
    *,
    http: httpx.AsyncClient,
    auth: TokenSource,
    allow_http: bool | None,
) -> UpstreamClient:
    """The upstream's metadata, validated against its ``expected_issuer`` if the operator set
    one, else against the issuer its configuration URL names (R-DISC-4)."""
    return UpstreamClient(
        await fetch_metadata(upstream, http=http, allow_http=allow_http), http=http, auth=auth
    )


async def fetch_metadata(
    upstream: Upstream, *, http: httpx.AsyncClient, allow_http: bool | None
) -> TransmitterMetadata:
    hint = upstream.issuer_hint
    expected = upstream.compatibility.expected_issuer
    url, doc = await fetch_metadata_document(hint, http=http)
    doc = without_nulls(doc)
    found = doc.get("issuer") if isinstance(doc, Mapping) else None
    if isinstance(found, str) and len(found) > MAX_ISSUER_SHOWN:  # a peer's string, shown to operators
        raise DiscoveryError(f"metadata at {url} names an issuer longer than {MAX_ISSUER_SHOWN} characters")
    wanted = expected or hint
    if isinstance(found, str) and found.rstrip("/") != wanted.rstrip("/"):
        if expected is not None:
            raise DiscoveryError(
                f"metadata at {url} names issuer {found!r}, not the expected_issuer {expected!r}"
            )
        raise DiscoveryError(
            f"metadata at {url} names issuer {found!r}, not {hint!r} (SSF 1.0 §7.2, R-DISC-4); "
            f"if you trust this transmitter, set its expected_issuer to {found!r}"
        )
    return parse_metadata(doc, issuer=wanted, allow_http=allow_http)
