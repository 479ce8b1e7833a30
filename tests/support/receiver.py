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
    status: int = 0  # what the receiver answered (scripted); 2xx means the SET was accepted


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
    # What to answer once the script is used up: a Reply, or one chosen per SET (its body).
    default: Reply | Callable[[str], Reply] = field(default_factory=Reply)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    delay: Callable[[str], float] | None = None  # per SET (its body): seconds before answering
    open_requests: int = 0  # requests being answered right now
    max_open: int = 0  # the most that were ever open at once

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

    def accepted(self) -> list[str]:
        """The bodies (SETs) the receiver answered with a 2xx, in arrival order."""
        return [r.body for r in self.received if 200 <= r.status <= 299]

    async def wait_accepted(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until ``count`` SETs have been answered with a 2xx."""
        async with asyncio.timeout(timeout):
            while len(self.accepted()) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.accepted()

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            self.open_requests += 1
            self.max_open = max(self.max_open, self.open_requests)
            try:
                return await answer(request)
            finally:
                self.open_requests -= 1

        async def answer(request: Request) -> Response:
            body = (await request.body()).decode()
            choice = self.script.pop(0) if self.script else self.default
            reply = choice if isinstance(choice, Reply) else choice(body)
            self.received.append(Received(time.monotonic(), dict(request.headers), body, reply.status))
            self.arrived.set()
            delay = reply.delay + (self.delay(body) if self.delay is not None else 0.0)
            if delay:
                await asyncio.sleep(delay)
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


@contextlib.asynccontextmanager
async def raw_http_server(answers: list[bytes], then: bytes) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP server that reads one HTTP request per connection and writes the next of
    ``answers`` verbatim (then ``then`` for ever), closing the connection after each: a
    receiver (or a broken proxy) that answers something that is not HTTP. Yields the base
    URL and the list of request bodies it read."""
    pending = list(answers)
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            bodies.append(await reader.readexactly(length))
            writer.write(pending.pop(0) if pending else then)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", bodies
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
