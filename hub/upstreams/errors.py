"""Why an upstream link failed; each is recorded in the upstream's state and retried."""

from __future__ import annotations

import asyncio

from hub.errors import HubError
from receivers.errors import TransmitterError


class UpstreamError(Exception):
    """A link cannot go on with its transmitter as things are."""


class StreamGone(UpstreamError):
    """The upstream answered 404 for the hub's stream: it was deleted there."""


class AudienceMismatch(UpstreamError):
    """The upstream's stream is for another audience than the hub's issuer URL."""


class VerificationTimeout(UpstreamError):
    """The verification event asked for did not come back in time."""


def describe(exc: BaseException) -> str:
    """One line for the upstream's ``last_error``."""
    if isinstance(exc, TransmitterError):
        parts = (exc.url or "transmitter", "answered", str(exc.status), exc.err, exc.description)
        return " ".join(p for p in parts if p)
    if isinstance(exc, HubError):
        return exc.description
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def raise_if_poll_ended(polling: asyncio.Task[None]) -> None:
    """A finished poll loop: the stream is gone (404), or it failed."""
    exc = polling.exception()
    if isinstance(exc, TransmitterError) and exc.status == 404:
        raise StreamGone(str(exc)) from exc
    if exc is not None:
        raise exc
    raise TransmitterError(200, "poll_stopped", "the poll loop stopped")
