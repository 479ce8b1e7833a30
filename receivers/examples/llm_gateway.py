"""An LLM gateway behind ``ContinuousAccessMiddleware``, streaming (server-sent events).

    python -m receivers.examples.llm_gateway [--hub http://127.0.0.1:8080] [--port 8092]

``POST /v1/chat/completions`` (OpenAI-shaped) streams a canned reply word by word. The
middleware never buffers, so streaming is unaffected; a caller whose session is revoked, or
whose risk turns HIGH (default policy), is refused before the model is called.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from receivers import ContinuousAccess, ContinuousAccessMiddleware, Identity
from receivers.examples._demo import DevIdentityProvider, common_arguments, log_audit, serve, subscribe


async def completions(request: Request) -> StreamingResponse:
    body = json.loads(await request.body() or b"{}")
    prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if isinstance(m, dict))

    async def chunks() -> AsyncIterator[bytes]:
        for word in f"Echo from the gateway: {prompt[:200]}".split():
            chunk = {"object": "chat.completion.chunk", "created": int(time.time())}
            chunk["choices"] = [{"index": 0, "delta": {"content": word + " "}}]
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


def build_app(access: ContinuousAccess, identity: Identity) -> ContinuousAccessMiddleware:
    gateway = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    return ContinuousAccessMiddleware(gateway, access, identity=identity)


async def run(args: argparse.Namespace) -> None:
    access = ContinuousAccess()
    log_audit(access)
    idp = DevIdentityProvider(Path(args.demo_dir))
    async with subscribe(args, access, name="example LLM gateway") as sub:
        print(f"subscribed: stream {sub.stream_id}", flush=True)
        print(f"LLM gateway on http://{args.host}:{args.port}/v1/chat/completions", flush=True)
        await serve(build_app(access, idp.identity()), args.host, args.port)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common_arguments(parser, "llm-gateway")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8092)
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
