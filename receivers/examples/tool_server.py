"""A tool server behind ``ContinuousAccessMiddleware``: revoked callers get 401, denied ones 403.

    python -m receivers.examples.tool_server [--hub http://127.0.0.1:8080] [--port 8091]

It subscribes to the hub (a poll stream for the CAEP events about ``--subject`` users), and
serves ``POST /tools/answer``. Callers present a bearer JWT from the development IdP (the
agent example mints them) and/or a Txn-Token. Every refusal is printed as an audit record.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receivers import ContinuousAccess, ContinuousAccessMiddleware, Identity
from receivers.examples._demo import DevIdentityProvider, common_arguments, log_audit, serve, subscribe


async def answer(request: Request) -> JSONResponse:
    question = (await request.json()).get("question", "") if await request.body() else ""
    return JSONResponse({"answer": f"42 (you asked: {question[:100]})"})


def build_app(access: ContinuousAccess, identity: Identity) -> ContinuousAccessMiddleware:
    tools = Starlette(routes=[Route("/tools/answer", answer, methods=["POST"])])
    return ContinuousAccessMiddleware(tools, access, identity=identity)


async def run(args: argparse.Namespace) -> None:
    access = ContinuousAccess()
    log_audit(access)
    idp = DevIdentityProvider(Path(args.demo_dir))
    async with subscribe(args, access, name="example tool server") as sub:
        print(f"subscribed: stream {sub.stream_id}", flush=True)
        print(f"tool server on http://{args.host}:{args.port}/tools/answer", flush=True)
        await serve(build_app(access, idp.identity()), args.host, args.port)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common_arguments(parser, "tool-server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8091)
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
