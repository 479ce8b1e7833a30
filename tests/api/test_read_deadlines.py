"""A client that sends its request too slowly is cut off; everyone else is served (issue 16).

The hub runs under the same uvicorn configuration as ``ssf-hub serve`` (hub.web.server), with
short deadlines so the tests take seconds: headers within 1 s, a body within 1.5 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from hub.logs import fields_of
from hub.web.server import default_body_timeout
from tests.support.hub import RunningHub, run_hub

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5


@pytest.fixture
async def strict_hub(tmp_path: Path) -> AsyncIterator[RunningHub]:
    async with run_hub(
        tmp_path / "data", header_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT, long_poll_seconds=3.0
    ) as hub:
        yield hub


def port_of(hub: RunningHub) -> int:
    return hub.settings.port


async def dribble(port: int, head: bytes, drip: bytes, *, every: float = 0.25, limit: float = 8.0) -> float:
    """Send ``head`` at once, then ``drip`` a byte at a time; seconds until the hub closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(head)
    try:
        for byte in drip:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), every) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                continue
            if time.monotonic() - started > limit:
                break
        # Out of bytes to drip: wait for the close.
        while await asyncio.wait_for(reader.read(1024), limit) != b"":
            pass
        return time.monotonic() - started
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - started
    finally:
        writer.close()


SLOW_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"


def slow_body(hub: RunningHub) -> tuple[bytes, bytes]:
    head = (
        b"POST /ssf/verify HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {hub.token()}\r\n".encode()
        + b"Content-Length: 200\r\n\r\n"
    )
    return head, b"{" + b" " * 199


def cuts_counted(stage: str) -> float:
    return REGISTRY.get_sample_value("ssf_hub_slow_clients_cut_total", {"stage": stage}) or 0.0


def test_the_default_body_deadline_grows_with_the_body_limit() -> None:
    assert default_body_timeout(256 * 1024) == pytest.approx(9.0)
    assert default_body_timeout(1024 * 1024) == pytest.approx(21.0)


async def test_slow_headers_are_cut_while_a_normal_client_is_served(strict_hub: RunningHub) -> None:
    port = port_of(strict_hub)
    cut_before = cuts_counted("headers")
    slow = [asyncio.create_task(dribble(port, b"", SLOW_HEADERS)) for _ in range(20)]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    r = await strict_hub.client.get("/ssf/stream", headers=strict_hub.auth())
    assert r.status_code == 200 and time.monotonic() - started < 0.5
    held = await asyncio.gather(*slow)
    # Cut at the header deadline, not at the end of the drip (200+ bytes at 4 a second = 50 s).
    assert all(HEADER_TIMEOUT - 0.1 <= t <= HEADER_TIMEOUT + 1.0 for t in held), held
    assert cuts_counted("headers") - cut_before == 20


async def test_a_connection_that_sends_nothing_is_cut(strict_hub: RunningHub) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(strict_hub))
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(), 5)
    assert time.monotonic() - started < HEADER_TIMEOUT + 1.0
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"err": "request_timeout"' in answer
    writer.close()


async def test_a_slow_body_is_cut_at_the_body_deadline(
    strict_hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="hub.web")
    server_errors = logging.getLogger("uvicorn.error")  # does not propagate to caplog's root handler
    server_errors.addHandler(caplog.handler)
    cut_before = cuts_counted("body")
    head, body = slow_body(strict_hub)  # authorized: the handler is reading the body when cut
    try:
        held = await dribble(port_of(strict_hub), head, body)
        await asyncio.sleep(0.2)
    finally:
        server_errors.removeHandler(caplog.handler)
    assert BODY_TIMEOUT - 0.1 <= held <= BODY_TIMEOUT + 1.0
    cuts = [fields_of(r) for r in caplog.records if r.getMessage() == "slow_client_cut"]
    assert cuts == [{"client": "127.0.0.1", "stage": "body", "after_s": BODY_TIMEOUT}]
    assert cuts_counted("body") - cut_before == 1
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # no traceback for a cut
    assert (await strict_hub.client.get("/healthz")).status_code == 200


async def test_long_polls_and_kept_alive_connections_are_not_cut(strict_hub: RunningHub) -> None:
    hub = strict_hub
    s = await hub.create_stream()
    started = time.monotonic()
    # Held 3 s (> both deadlines) after the request was read: not a slow client.
    r = await hub.client.post(
        s["delivery"]["endpoint_url"], json={"returnImmediately": False}, headers=hub.auth()
    )
    assert r.status_code == 200 and r.json()["sets"] == {}
    assert time.monotonic() - started >= 2.5
    # The same kept-alive connection serves the next request after a pause shorter than keep-alive.
    await asyncio.sleep(HEADER_TIMEOUT + 0.5)
    assert (await hub.client.get("/healthz")).status_code == 200
