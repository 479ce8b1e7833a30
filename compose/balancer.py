"""A small HTTP load balancer, standing in for HAProxy when the topology runs on loopback.

    python compose/balancer.py --listen 127.0.0.1:8080 --backend hub-1=http://127.0.0.1:8081 \
        --backend hub-2=http://127.0.0.1:8082

It does what ``compose/haproxy.cfg`` asks of HAProxy, no more: round robin per request
over the replicas whose ``GET /healthz`` answers 200 (checked every second; two failures
take one out, two passes bring it back), a retry on the next replica only when the
connection could not be made (nothing was sent, so an emit is never sent twice), and a
JSON 503 with ``Retry-After`` while no replica is up. ``GET /_balancer`` shows the state.
Development and tests only: it buffers bodies and speaks HTTP/1.1 to the replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CHECK_INTERVAL = 1.0
FALL, RISE = 2, 2
RETRY_AFTER = "2"
# Hop-by-hop headers (RFC 9110 §7.6.1) and those the proxy recomputes.
DROPPED_HEADERS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
    | {"host", "content-length", "content-encoding"}
)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass
class Backend:
    name: str
    url: str
    up: bool = True  # HAProxy too starts a server as up and lets the checks decide
    streak: int = 0  # consecutive checks that disagree with ``up``
    served: int = 0

    def checked(self, ok: bool) -> None:
        if ok == self.up:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= (RISE if ok else FALL):
            self.up, self.streak = ok, 0


class Balancer:
    def __init__(self, backends: Sequence[Backend], client: httpx.AsyncClient) -> None:
        self.backends = list(backends)
        self.client = client
        self._turn = itertools.count()

    def candidates(self) -> list[Backend]:
        """The healthy backends, starting with the next one in the rotation."""
        start = next(self._turn) % len(self.backends)
        ordered = self.backends[start:] + self.backends[:start]
        return [b for b in ordered if b.up]

    async def check_forever(self) -> None:
        while True:
            for backend in self.backends:
                try:
                    r = await self.client.get(backend.url + "/healthz", timeout=1.0)
                    backend.checked(r.status_code == 200)
                except httpx.HTTPError:
                    backend.checked(False)
            await asyncio.sleep(CHECK_INTERVAL)

    async def forward(self, request: Request) -> Response:
        if request.url.path == "/_balancer":
            return JSONResponse(
                {b.name: {"url": b.url, "up": b.up, "served": b.served} for b in self.backends}
            )
        body = await request.body()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in DROPPED_HEADERS]
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        for backend in self.candidates():
            try:
                reply = await self.client.request(
                    request.method, backend.url + target, headers=headers, content=body
                )
            except httpx.ConnectError:
                backend.checked(False)
                continue  # nothing reached it: safe to try the next replica
            except httpx.HTTPError as exc:
                return _unavailable(f"replica {backend.name} failed mid-request ({type(exc).__name__})", 502)
            backend.served += 1
            kept = {k: v for k, v in reply.headers.items() if k.lower() not in DROPPED_HEADERS}
            return Response(reply.content, status_code=reply.status_code, headers=kept)
        return _unavailable("no ssf-hub replica is available; retry shortly", 503)


def _unavailable(description: str, status: int) -> JSONResponse:
    return JSONResponse(
        {"err": "temporarily_unavailable", "description": description},
        status_code=status,
        headers={"Retry-After": RETRY_AFTER, "Cache-Control": "no-store"},
    )


def build_app(backends: Sequence[Backend]) -> Starlette:
    state: dict[str, Balancer] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Long polls are held up to 30 s by the hub; allow for that and then some.
        timeout = httpx.Timeout(60.0, connect=2.0)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            state["balancer"] = balancer = Balancer(backends, client)
            checks = asyncio.create_task(balancer.check_forever())
            try:
                yield
            finally:
                checks.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await checks

    async def forward(request: Request) -> Response:
        return await state["balancer"].forward(request)

    return Starlette(routes=[Route("/{path:path}", forward, methods=METHODS)], lifespan=lifespan)


def parse_backend(text: str) -> Backend:
    name, sep, url = text.partition("=")
    if not sep or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected NAME=http://HOST:PORT, got {text!r}")
    return Backend(name, url.rstrip("/"))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to accept requests on")
    parser.add_argument("--backend", action="append", type=parse_backend, required=True, help="NAME=URL")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    uvicorn.run(build_app(args.backend), host=host, port=int(port), log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
