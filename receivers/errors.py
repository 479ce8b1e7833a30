"""Exceptions of the receivers library.

:class:`SetError` and its subclasses are refusals of one Security Event Token. Each carries
the RFC 8935 / SSF error code (R-PUSH-6, R-VERIFY-6) in :attr:`SetError.err`, so the push
endpoint can answer ``400 {"err", "description"}`` and the poll consumer can report the SET
in ``setErrs`` without translating anything.

Everything else (a transmitter answering with an error, a failed discovery, a token that
cannot be obtained) has its own type, all deriving from :class:`ReceiverError`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDenied",
    "AuthenticationFailed",
    "DiscoveryError",
    "InvalidAudience",
    "InvalidIssuer",
    "InvalidKey",
    "InvalidRequest",
    "InvalidState",
    "IssuerMismatch",
    "KeysUnavailable",
    "ReceiverError",
    "SetError",
    "TokenError",
    "TransmitterError",
]


class ReceiverError(Exception):
    """Base class of every exception this library raises on purpose."""


class SetError(ReceiverError):
    """A SET was refused. ``err`` is the RFC 8935 error code, ``description`` human text."""

    err: ClassVar[str] = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def as_dict(self) -> dict[str, str]:
        """The RFC 8935 error body (R-PUSH-5) and the RFC 8936 ``setErrs`` value (R-POLL-2)."""
        return {"err": self.err, "description": self.description}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class InvalidRequest(SetError):
    """Not a SET, or the event does not fit its definition (R-PUSH-6)."""

    err = "invalid_request"


class InvalidKey(SetError):
    """The signing key is unacceptable: unknown ``kid``, bad signature, refused algorithm."""

    err = "invalid_key"


class InvalidIssuer(SetError):
    """The SET's ``iss`` is not the issuer of this stream (R-SET-13)."""

    err = "invalid_issuer"


class InvalidAudience(SetError):
    """The SET's ``aud`` does not name this receiver."""

    err = "invalid_audience"


class AuthenticationFailed(SetError):
    """The transmitter did not authenticate (push ``Authorization`` header, R-PUSH-9)."""

    err = "authentication_failed"


class AccessDenied(SetError):
    """The transmitter may not send this SET to this receiver."""

    err = "access_denied"


class InvalidState(SetError):
    """A verification event echoes a ``state`` this receiver never asked for (R-VERIFY-6)."""

    err = "invalid_state"


class TransmitterError(ReceiverError):
    """A transmitter endpoint answered with an unexpected status.

    ``status`` is the HTTP status; ``err`` and ``description`` come from the JSON error body
    when there is one (``{"err", "description"}`` or OAuth ``{"error", "error_description"}``).
    A ``202`` on update or status change (the transmitter has not decided yet, R-STREAM-12,
    R-STATUS-3) is reported as a TransmitterError with ``status == 202``.
    """

    def __init__(self, status: int, err: str | None, description: str, *, url: str = "") -> None:
        super().__init__(f"{url} answered {status}: {err or ''} {description}".strip())
        self.status = status
        self.err = err
        self.description = description
        self.url = url

    @classmethod
    def from_body(cls, status: int, body: Any, *, url: str = "") -> TransmitterError:
        err: str | None = None
        description = ""
        if isinstance(body, dict):
            raw_err = body.get("err", body.get("error"))
            raw_desc = body.get("description", body.get("error_description"))
            err = raw_err if isinstance(raw_err, str) else None
            description = raw_desc if isinstance(raw_desc, str) else ""
        return cls(status, err, description[:500], url=url)


class DiscoveryError(ReceiverError):
    """Transmitter metadata could not be fetched or failed validation (R-DISC-6: do not use it)."""


class IssuerMismatch(ReceiverError):
    """A stream configuration names another issuer than the discovered one (R-STREAM-5, -9).

    The stream must not be used: no verification, polling or status calls. ``stream_id`` names
    it, so a caller can delete it (``StreamClient.create_stream(delete_on_mismatch=True)`` does)
    instead of leaving one orphaned stream per retry; ``deleted`` says whether that was done.
    """

    def __init__(self, description: str, *, stream_id: str | None = None, deleted: bool = False) -> None:
        super().__init__(description)
        self.stream_id = stream_id
        self.deleted = deleted


class KeysUnavailable(ReceiverError):
    """The keys for a ``kid`` cannot be looked up right now (JWKS unreachable, or a refetch was
    made too recently). Not a verdict on the SET: push answers ``503`` with ``Retry-After`` and
    the poll consumer leaves the SET unacknowledged, so the transmitter delivers it again."""

    def __init__(self, description: str, *, retry_after: float) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class TokenError(ReceiverError):
    """An access token or Txn-Token could not be obtained or did not verify."""
