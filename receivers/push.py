"""RFC 8935 push endpoint as a mountable ASGI app.

``POST`` the compact SET (``Content-Type: application/secevent+jwt``, R-PUSH-1) to the app's
root, or to any path under it when mounted (``Mount("/ssf/push", app=PushEndpoint(...))``).

- ``202 Accepted``, empty body: the SET verified and was handed to the dispatcher — or it is a
  repeat of one that was (R-PUSH-4, R-SEC-3). Handlers run before the answer, so when the
  transmitter sees ``202`` the revocation is already in force.
- ``400`` with ``{"err", "description"}`` (``Content-Type: application/json``,
  ``Content-Language: en``): the SET was refused; ``err`` is the RFC 8935 code (R-PUSH-5, -6).
- The transmitter is authenticated before any cryptography (R-SEC-9, R-PUSH-10): when
  ``authorization`` is set, the ``Authorization`` header must equal it (the stream's
  ``delivery.authorization_header``, compared in constant time) or be accepted by the
  callable given; otherwise ``400 authentication_failed`` with ``WWW-Authenticate: Bearer``.
- ``500`` (empty body) when a handler failed on the SET
  (:class:`~receivers.dispatch.HandlerFailed`) or it could not be processed (a state store is
  down): it was not acted on and not remembered, so the transmitter's retry runs the handlers
  again (R-PUSH-7).
- Other methods get ``405``; bodies over ``max_body_bytes`` get ``413``; a SET whose key cannot
  be looked up yet (:class:`~receivers.errors.KeysUnavailable`) gets ``503`` with ``Retry-After``
  (R-PUSH-7: a plain HTTP status, retried by the transmitter).

The ``Content-Type`` is not enforced: a body that is not a SET fails verification anyway.

By default the endpoint makes its own secret: :meth:`PushEndpoint.delivery` gives the stream's
``delivery`` object carrying it as ``authorization_header``, so the secret is written once.
Until the endpoint has a receiver (``subscribe()`` gives it one as soon as the stream exists)
it answers ``503`` with ``Retry-After: 1`` and the transmitter retries.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from receivers.dispatch import HandlerFailed
from receivers.errors import AuthenticationFailed, KeysUnavailable, SetError
from receivers.receiver import Receiver
from receivers.streams import push_delivery
from receivers.verify import MAX_SET_BYTES

__all__ = ["PushEndpoint"]

log = logging.getLogger("receivers.push")


class _Generated:
    """The default of ``authorization``: make a random secret."""


GENERATED = _Generated()

Authenticator = Callable[[str | None], "bool | Awaitable[bool]"]


class PushEndpoint:
    """The RFC 8935 endpoint of one stream, as an ASGI app; see the module docstring."""

    def __init__(
        self,
        receiver: Receiver | None = None,
        *,
        authorization: str | Authenticator | _Generated | None = GENERATED,
        max_body_bytes: int = MAX_SET_BYTES,
    ) -> None:
        """``authorization``: the exact ``Authorization`` header the transmitter must send (by
        default a fresh random bearer secret), a callable deciding, or None to accept any."""
        self.receiver = receiver
        self.authorization: str | Authenticator | None = (
            f"Bearer {secrets.token_urlsafe(32)}" if isinstance(authorization, _Generated) else authorization
        )
        self.max_body_bytes = max_body_bytes

    def delivery(self, endpoint_url: str) -> dict[str, Any]:
        """The RFC 8935 ``delivery`` object for a stream pushing to this endpoint at
        ``endpoint_url`` (its public URL), with this endpoint's secret as ``authorization_header``."""
        header = self.authorization if isinstance(self.authorization, str) else None
        return push_delivery(endpoint_url, header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] != "POST":
            await _respond(send, 405, b"", [(b"allow", b"POST")])
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not await self._authenticated(headers.get("authorization")):
            error = AuthenticationFailed("the push request is not authenticated")
            await _refuse(send, error, [(b"www-authenticate", b"Bearer")])
            return
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            await _respond(send, 413, b"")
            return
        if self.receiver is None:  # mounted before its stream exists
            await _respond(send, 503, b"", [(b"retry-after", b"1")])
            return
        try:
            await self.receiver.process(body)
        except SetError as error:
            log.info("refused pushed SET: %s %s", error.err, error.description)
            await _refuse(send, error)
            return
        except KeysUnavailable as exc:  # not a verdict on the SET: ask for a retry
            log.warning("cannot verify a pushed SET yet: %s", exc)
            await _respond(send, 503, b"", [(b"retry-after", str(math.ceil(exc.retry_after)).encode())])
            return
        except HandlerFailed as exc:
            log.warning("answering 500 to a pushed SET: %s", exc)
            await _respond(send, 500, b"")
            return
        except Exception:  # a store or handler dependency is down: the transmitter retries
            log.exception("could not process a pushed SET; answering 500")
            await _respond(send, 500, b"")
            return
        await _respond(send, 202, b"")

    async def _authenticated(self, header: str | None) -> bool:
        expected = self.authorization
        if expected is None:
            return True
        if isinstance(expected, str):
            return header is not None and hmac.compare_digest(header.encode(), expected.encode())
        result = expected(header)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body", False):
            return bytes(body)


async def _refuse(send: Send, error: SetError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(error.as_dict()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-language", b"en"), *(extra or [])]
    await _respond(send, 400, body, headers)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [
        *(headers or []),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
