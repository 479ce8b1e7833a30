"""An agent that calls a tool for a user with cached, delegated tokens.

    python -m receivers.examples.agent [--hub http://127.0.0.1:8080] [--tool http://127.0.0.1:8091]

It holds Alice's token (minted by the development IdP with ``act`` naming the agent's SPIFFE
ID, as token exchange would) in a :class:`~receivers.TokenCache`, and calls the tool through
:class:`~receivers.CachedTokenAuth` every ``--interval`` seconds. It also subscribes to the
hub itself: when Alice's session is revoked, or the agent's workload identity is, the cached
token is dropped and the next call re-acquires one instead of using a dead credential.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

import httpx

from receivers import CachedTokenAuth, ContinuousAccess, TokenCache
from receivers.examples._demo import DevIdentityProvider, common_arguments, log_audit, subscribe

AGENT_ID = "spiffe://ssf-demo.invalid/agent/researcher"


async def call_tool(tools: httpx.AsyncClient, url: str, auth: CachedTokenAuth, n: int) -> str:
    r = await tools.post(url, json={"question": f"question {n}"})
    entry = auth.cache.get(auth.key)
    held = entry.fingerprint if entry else "none"
    return f"call {n}: HTTP {r.status_code} token={held} acquisitions={auth.acquisitions} {r.text[:80]}"


async def run(args: argparse.Namespace) -> None:
    idp = DevIdentityProvider(Path(args.demo_dir))
    user = (args.subject or ["alice@example.com"])[0]
    cache = TokenCache(name="researcher-agent", holder=[{"format": "uri", "uri": AGENT_ID}])
    access = ContinuousAccess(token_caches=[cache])
    log_audit(access)

    def exchange(key: tuple[str, str]) -> str:  # stands in for RFC 8693 token exchange at the IdP
        user, _tool = key
        return idp.mint(user, email=user, act={"sub": AGENT_ID})

    auth = CachedTokenAuth(cache, exchange, key=(user, args.tool))
    agent_subject = {"format": "uri", "uri": AGENT_ID}
    async with (
        subscribe(args, access, name="example agent", extra_subjects=[agent_subject]) as sub,
        httpx.AsyncClient(auth=auth, timeout=30) as tools,
    ):
        print(f"subscribed: stream {sub.stream_id}", flush=True)
        for n in range(args.calls or 1_000_000):
            print(await call_tool(tools, args.tool.rstrip("/") + "/tools/answer", auth, n), flush=True)
            await asyncio.sleep(args.interval)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common_arguments(parser, "researcher-agent")
    parser.add_argument("--tool", default="http://127.0.0.1:8091", help="the tool server's base URL")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between calls")
    parser.add_argument("--calls", type=int, default=0, help="stop after this many calls (0: run until ^C)")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
