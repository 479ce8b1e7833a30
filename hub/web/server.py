"""The HTTP server around the app: uvicorn, with deadlines on reading each request.

uvicorn bounds an idle keep-alive connection, but nothing bounds a client that sends its
request slowly: one byte of headers a second holds a connection (and a file descriptor) for
as long as the client likes, and a hundred such clients hold a hundred. Here every request
must arrive in time:

- its headers within ``header_timeout`` seconds of the connection opening or of the request's
  first byte, whichever applies (a connection that sends nothing is cut too);
- its body within ``body_timeout`` seconds of the headers; by default 5 s plus one second per
  64 KiB of ``max_body_bytes`` (9 s for the default 256 KiB), so an honest client on a slow
  link is not cut but a dribbling one is.

A connection past a deadline is closed (with ``408`` when no request is in progress), logged
and counted (``ssf_hub_slow_clients_cut_total``). Long polls are unaffected: they wait after the request
was read. The deadlines are added to uvicorn's httptools protocol, the one it uses whenever
httptools is installed (it is, from the lock).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hub import logs, metrics
from hub.config import Settings

log = logging.getLogger("hub.web")

BODY_TIMEOUT_BASE = 5.0
BODY_BYTES_PER_SECOND = 64 * 1024
_TIMEOUT_BODY = b'{"err": "request_timeout", "description": "the request took too long to send"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n" % len(_TIMEOUT_BODY)
    + _TIMEOUT_BODY
)


def default_body_timeout(max_body_bytes: int) -> float:
    return BODY_TIMEOUT_BASE + max_body_bytes / BODY_BYTES_PER_SECOND


@dataclass
class ReadDeadlines:
    """The deadlines (cuts are counted in ``ssf_hub_slow_clients_cut_total``)."""

    header_timeout: float
    body_timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadDeadlines:
        body = settings.body_timeout
        return cls(
            settings.header_timeout, default_body_timeout(settings.max_body_bytes) if body is None else body
        )

    def protocol(self) -> type[HttpToolsProtocol]:
        """uvicorn's httptools protocol with these deadlines."""
        return type("DeadlineHttpToolsProtocol", (_DeadlineProtocol,), {"deadlines": self})


class _DeadlineProtocol(HttpToolsProtocol):
    deadlines: ReadDeadlines
    _read_timer: asyncio.TimerHandle | None = None
    _reading: str = "headers"

    def _arm(self, stage: str, seconds: float) -> None:
        self._disarm()
        self._reading = stage
        self._read_timer = self.loop.call_later(seconds, self._cut)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _cut(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        in_body = self._reading == "body"
        if not in_body:  # no request in progress: say why before closing
            self.transport.write(_TIMEOUT_RESPONSE)
        limit = self.deadlines.body_timeout if in_body else self.deadlines.header_timeout
        host = self.client[0] if self.client else "-"
        metrics.SLOW_CLIENTS_CUT.labels(self._reading).inc()
        logs.event(log, logging.WARNING, "slow_client_cut", client=host, stage=self._reading, after_s=limit)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("headers", self.deadlines.header_timeout)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:  # a later request on a kept-alive connection
            self._arm("headers", self.deadlines.header_timeout)

    def on_headers_complete(self) -> None:
        self._arm("body", self.deadlines.body_timeout)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def server_config(app: Any, settings: Settings, deadlines: ReadDeadlines, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration ``ssf-hub serve`` (and the test hubs) run ``app`` with."""
    values: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "access_log": settings.access_log,  # ~47 µs per request; off by default (research/perf.md §2b)
        "proxy_headers": False,
        "server_header": False,
        "lifespan": "on",
        "http": deadlines.protocol(),
    }
    values.update(options)
    return uvicorn.Config(app, **values)
