"""One RFC 8935 push: POST one SET, classify the answer (R-PUSH-1, R-PUSH-5..8)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from hub import __version__
from hub.core.outcome import Outcome, classify, network_failure
from hub.core.retry import parse_retry_after
from hub.core.secevent import SET_MEDIA_TYPE
from hub.delivery.push.egress import BlockedEndpoint, EndpointGuard

RESPONSE_READ_LIMIT = 4096  # enough for an {"err", "description"} body
USER_AGENT = f"ssf-hub/{__version__}"


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: Outcome
    latency_ms: float


class PushSender:
    """Sends over an injected httpx transport.

    Straight to the transport, not through ``httpx.AsyncClient``: a push needs none of the
    client's layers (no base URL, cookies, auth flows or redirects), and on the push
    benchmark those layers cost more than the HTTP exchange (research in tests/bench/README:
    request building 20 %, cookie extraction 17 %, URL merging 9 % of a send).
    """

    def __init__(self, transport: httpx.AsyncBaseTransport, guard: EndpointGuard, *, timeout: float) -> None:
        self.transport = transport
        self.guard = guard
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0)).as_dict()

    async def send(self, endpoint_url: str, set_jwt: str, authorization: str | None) -> PushResult:
        started = time.perf_counter()
        try:
            # Checked before every attempt, not only at create: DNS may have changed since.
            pinned = await self.guard.pin(endpoint_url)
        except BlockedEndpoint as exc:
            return PushResult(network_failure(f"blocked: {exc.description}"), 0.0)
        headers = {
            "Host": pinned.host_header,
            "User-Agent": USER_AGENT,
            "Content-Type": SET_MEDIA_TYPE,
            "Accept": "application/json",
            # The error body is classified as sent; a compressed one would not parse.
            "Accept-Encoding": "identity",
        }
        if authorization is not None:  # exactly the configured value, and only then (R-PUSH-1)
            headers["Authorization"] = authorization
        extensions: dict[str, object] = {"timeout": self.timeout}
        if pinned.url.startswith("https:"):
            extensions["sni_hostname"] = pinned.host
        try:
            request = httpx.Request(
                "POST", pinned.url, content=set_jwt.encode(), headers=headers, extensions=extensions
            )
            # A transport never follows redirects (R-PUSH-1: the SET goes to endpoint_url only).
            response = await self.transport.handle_async_request(request)
            try:
                body = b""
                async for chunk in response.stream:  # type: ignore[union-attr]
                    body += chunk
                    if len(body) >= RESPONSE_READ_LIMIT:
                        break
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            # httpx-aiohttp maps every aiohttp connection error (a hang-up, a refused
            # connection) to ConnectTimeout: name what really happened in the trace.
            cause = exc.__cause__
            if type(cause).__module__.startswith("aiohttp") and not isinstance(cause, TimeoutError):
                return PushResult(network_failure(_error_text(cause)), _ms(started))
            return PushResult(network_failure("timeout"), _ms(started))
        except Exception as exc:
            # Not only httpx.HTTPError: the aiohttp transport lets some errors through unmapped
            # (ClientResponseError on an answer that is not HTTP). Any failure to get an answer
            # is a retryable attempt to record, never an exception that kills the stream's worker.
            return PushResult(network_failure(_error_text(exc)), _ms(started))
        retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
        outcome = classify(
            response.status_code,
            body[:RESPONSE_READ_LIMIT],
            response.headers.get("content-type"),
            retry_after,
        )
        return PushResult(outcome, _ms(started))


def _error_text(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
