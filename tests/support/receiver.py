"""A push receiver for tests: a real Starlette app on loopback that records every SET
and answers with whatever the test scripted (202 by default)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.servers import serve_app


@dataclass
class Received:
    at: float
    headers: dict[str, str]
    body: str


@dataclass
class Reply:
    status: int = 202
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class PushReceiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    script: list[Reply] = field(default_factory=list)  # consumed in order, then `default`
    default: Reply = field(default_factory=Reply)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def then(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests have arrived (accepted or not)."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    def bodies(self) -> list[str]:
        return [r.body for r in self.received]

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            body = (await request.body()).decode()
            self.received.append(Received(time.monotonic(), dict(request.headers), body))
            self.arrived.set()
            reply = self.script.pop(0) if self.script else self.default
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.json is not None:
                return JSONResponse(reply.json, status_code=reply.status, headers=reply.headers)
            return Response(status_code=reply.status, headers=reply.headers)

        return Starlette(routes=[Route("/events", endpoint, methods=["POST"])])


@contextlib.asynccontextmanager
async def push_receiver() -> AsyncIterator[PushReceiver]:
    receiver = PushReceiver()
    async with serve_app(receiver.app()) as base:
        receiver.url = base + "/events"
        yield receiver


@contextlib.asynccontextmanager
async def dropping_proxy(target_port: int, drops: int) -> AsyncIterator[str]:
    """A TCP front that hangs up on the first ``drops`` connections, then relays to the target:
    the receiver's network dropping the connection mid-request."""
    remaining = [drops]

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if remaining[0] > 0:
            remaining[0] -= 1
            await reader.read(1024)  # take the request, answer nothing
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


Check = Callable[[], bool]


async def eventually(check: Check, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``check`` until it holds (for state the hub changes in the background)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
