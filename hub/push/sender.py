"""One RFC 8935 push: POST one SET, classify the answer (R-PUSH-1, R-PUSH-5..8)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from hub.core.outcome import Outcome, classify, network_failure
from hub.core.retry import parse_retry_after
from hub.core.secevent import SET_MEDIA_TYPE
from hub.push.egress import BlockedEndpoint, EndpointGuard

RESPONSE_READ_LIMIT = 4096  # enough for an {"err", "description"} body


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: Outcome
    latency_ms: float


class PushSender:
    """Sends over an injected ``httpx.AsyncClient`` (tests may swap its transport)."""

    def __init__(self, client: httpx.AsyncClient, guard: EndpointGuard, *, timeout: float) -> None:
        self.client = client
        self.guard = guard
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))

    async def send(self, endpoint_url: str, set_jwt: str, authorization: str | None) -> PushResult:
        started = time.perf_counter()
        try:
            # Checked before every attempt, not only at create: DNS may have changed since.
            pinned = await self.guard.pin(endpoint_url)
        except BlockedEndpoint as exc:
            return PushResult(network_failure(f"blocked: {exc.description}"), 0.0)
        headers = {
            "Content-Type": SET_MEDIA_TYPE,
            "Accept": "application/json",
            "Host": pinned.host_header,
        }
        if authorization is not None:  # exactly the configured value, and only then (R-PUSH-1)
            headers["Authorization"] = authorization
        extensions = {"sni_hostname": pinned.host} if pinned.url.startswith("https:") else {}
        try:
            request = self.client.build_request(
                "POST",
                pinned.url,
                content=set_jwt.encode(),
                headers=headers,
                timeout=self.timeout,
                extensions=extensions,
            )
            response = await self.client.send(request, follow_redirects=False, stream=True)
            try:
                body = b""
                async for chunk in response.aiter_raw():
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
