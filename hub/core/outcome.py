"""What a push attempt's response means for the SET (R-PUSH-4..8, RFC 8935 §2.2-2.4).

A receiver answers either with a plain HTTP status (R-PUSH-7) or with ``400`` and a JSON
body ``{"err": ..., "description": ...}`` (R-PUSH-5, R-PUSH-6); both forms are handled.
The rule of thumb: drop a SET only when the receiver has clearly said, in the SET error
vocabulary, that this SET will never be accepted. Everything else is retried, because a
lost revocation is worse than a duplicate (receivers de-duplicate by ``jti``).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

BODY_PARSE_LIMIT = 4096  # bytes of the response body we look at; receivers' bodies are untrusted
DESCRIPTION_MAX = 300
ERR_MAX = 64

# R-PUSH-6/8: semantic rejections of this very SET; resending the same token changes nothing.
PERMANENT_ERRS = frozenset(
    {"invalid_request", "invalid_key", "invalid_issuer", "invalid_audience", "invalid_state"}
)
# R-PUSH-8: these may clear once the receiver's credentials or grants are fixed.
AUTH_ERRS = frozenset({"authentication_failed", "access_denied"})
# Statuses that mean "later" and may carry Retry-After (RFC 9110 §15.5.9, RFC 8470, RFC 6585).
_BACK_OFF = frozenset({408, 425, 429})

REDIRECT_ERROR = "redirect not followed: fix the stream's endpoint_url"


class OutcomeKind(enum.StrEnum):
    DELIVERED = "delivered"
    PERMANENT = "permanent"  # this SET will never be accepted: record it, do not retry
    RETRY = "retry"
    AUTH_RETRY = "auth_retry"  # retry on the schedule, and flag the stream's credentials


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    status: int | None  # HTTP status; None when no response arrived
    err: str | None  # the receiver's SET error code (R-PUSH-6), if it sent one
    description: str | None
    retry_after: float | None = None
    error: str | None = None  # our own short text, e.g. "timeout", "connection refused"


def classify(status: int, body: bytes, content_type: str | None, retry_after: float | None = None) -> Outcome:
    """Classify one HTTP response to a pushed SET. Never raises, whatever the body holds."""
    err, description = _read_error_body(body, content_type)

    def outcome(
        kind: OutcomeKind, *, err: str | None = err, wait: bool = False, error: str | None = None
    ) -> Outcome:
        return Outcome(kind, status, err, description, retry_after if wait else None, error)

    if 200 <= status <= 299:
        return outcome(OutcomeKind.DELIVERED)
    if 300 <= status <= 399:
        # Following a redirect would send the SET (and the Authorization header) somewhere
        # the stream owner never registered, past the SSRF check: fail and say why.
        return outcome(OutcomeKind.RETRY, error=REDIRECT_ERROR)
    if status == 400:
        if err in PERMANENT_ERRS:
            return outcome(OutcomeKind.PERMANENT)
        if err in AUTH_ERRS:
            return outcome(OutcomeKind.AUTH_RETRY)
        # A 400 without a registered err may come from a proxy, a WAF or a load balancer
        # in front of the receiver rather than from the receiver's SET check; dropping the
        # SET on such an answer could silently lose a revocation, so retry it.
        return outcome(OutcomeKind.RETRY)
    if status in (401, 403):
        return outcome(OutcomeKind.AUTH_RETRY)
    if status == 413:
        # The same bytes will always be too large for this receiver.
        return outcome(OutcomeKind.PERMANENT, err="payload_too_large")
    if status in _BACK_OFF or 500 <= status <= 599:
        return outcome(OutcomeKind.RETRY, wait=True)
    if 400 <= status <= 499:
        return outcome(OutcomeKind.RETRY)
    return outcome(OutcomeKind.RETRY, error=f"unexpected HTTP status {status}")


def network_failure(error: str) -> Outcome:
    """No HTTP response at all (timeout, refused connection, TLS failure): always retried."""
    return Outcome(
        OutcomeKind.RETRY, None, None, None, error=_clean(error, DESCRIPTION_MAX) or "network error"
    )


def _read_error_body(body: bytes, content_type: str | None) -> tuple[str | None, str | None]:
    """The ``err`` and ``description`` a receiver sent (R-PUSH-5), else a text snippet."""
    head = bytes(body[:BODY_PARSE_LIMIT])
    if not head:
        return None, None
    if _may_be_json(content_type):
        doc = _load_json(head)
        if isinstance(doc, dict):
            err = doc.get("err")
            desc = doc.get("description")
            return (
                _clean(err, ERR_MAX) if isinstance(err, str) else None,
                _clean(desc, DESCRIPTION_MAX) if isinstance(desc, str) else None,
            )
    # Not the RFC 8935 error shape: keep a little of the text so an operator can see
    # what answered (a proxy's HTML error page, a framework's default message, ...).
    return None, _clean(head.decode("utf-8", errors="replace"), DESCRIPTION_MAX)


def _may_be_json(content_type: str | None) -> bool:
    # Receivers sometimes omit the header; an explicit non-JSON type (text/html from a
    # proxy) is not the receiver's SET error answer, so its "err" would not be trusted.
    if content_type is None or not content_type.strip():
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _load_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _clean(text: str, limit: int) -> str | None:
    """Printable, single-line, bounded: receiver text ends up in logs and the admin API."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    flat = " ".join(flat.split())
    return flat[:limit].rstrip() or None
