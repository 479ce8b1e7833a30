"""What ``ssf-hub demo`` runs (:mod:`hub.cli.demo`): a revocation travelling end to end, timed.

It starts a hub on a temporary data dir, a simulated identity provider (a trusted issuer that
pushes signed SETs to ``/ssf/ingest``) and three example receivers (an agent, a tool server, an
LLM gateway; see :mod:`hub.cli.demo_cast`). The agent calls the tool with Alice's token; the
IdP revokes Alice's session; the demo prints the chain: IdP push -> hub accepted -> SET
delivered per stream -> agent dropped its token -> tool refused the stale call -> agent
re-authenticated and was served, then the receipts the hub holds per stream.

``--console`` keeps everything running and prints the console URL and an admin token;
Ctrl-C (or SIGTERM) stops everything the demo started and deletes its data. ``--quick``
skips the pauses meant for a human reader (the tests run it so).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from hub.auth.tokens import mint_local_token
from hub.cli.demo_cast import (
    USER,
    Member,
    SimulatedIdP,
    Timeline,
    call_tool,
    describe,
    free_socket,
    receivers_running,
    serve,
)
from hub.config import load_settings
from hub.core.discovery import INGEST_PATH
from hub.web.app import create_app

STEP_TIMEOUT = 15.0
RECEIVERS = ("agent", "tool-server", "llm-gateway")
CHAIN = (
    "pushed",
    "accepted",
    *(f"delivered:{name}" for name in RECEIVERS),
    "dropped",
    "refused",
    "served",
)


async def run_demo(*, quick: bool, keep_running: bool, out: TextIO) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ssf-hub-demo-"))
    try:
        return await _demo(workdir, quick=quick, keep_running=keep_running, out=out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


async def _demo(workdir: Path, *, quick: bool, keep_running: bool, out: TextIO) -> int:
    sock = free_socket()
    port = sock.getsockname()[1]
    overrides = {
        "data_dir": workdir / "hub",
        "port": port,
        "allow_private_endpoints": True,
        "log_level": "warning",
        "signing_processes": 0,
        "min_verification_interval": 0,
    }
    settings = load_settings(environ={}, overrides=overrides)
    app = create_app(settings)
    async with serve(app, sock, lifespan="on") as base:
        hub = app.state.hub
        key = await hub.key_storage.token_key()

        def mint(sub: str, scope: str = "ssf.manage", ttl: int = 3600) -> str:
            return mint_local_token(key, sub=sub, scope=scope, ttl=ttl, now=time.time())

        _say(out, f"ssf-hub demo: hub {base} (data in {workdir})")
        idp = SimulatedIdP(workdir / "idp")
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            admin = {"Authorization": f"Bearer {mint('demo-secops', 'ssf.admin')}"}
            r = await client.post("/ssf/admin/issuers", json=idp.registration(), headers=admin)
            r.raise_for_status()
            timeline = Timeline()
            async with receivers_running(settings.issuer_url, idp, mint, timeline) as members:
                _say(
                    out,
                    "  receivers subscribed: "
                    + ", ".join(f"{m.name} ({m.stream_id})" for m in members.values()),
                )
                complete = await _revocation(
                    client, settings.issuer_url, idp, members, timeline, mint, quick, out
                )
                await _print_receipts(client, admin, timeline, members, out)
                if keep_running:
                    token = mint("demo-secops", "ssf.admin", ttl=12 * 3600)
                    _say(out, f"\nconsole: {base}/console  (sign in with this ssf.admin token, valid 12 h)")
                    _say(out, token)
                    _say(out, "Ctrl-C stops the hub, the IdP and the receivers.")
                    await _until_terminated()
    return 0 if complete else 1


async def _until_terminated() -> None:
    """Wait for SIGTERM (``docker stop``, ``kill``); Ctrl-C cancels the wait through
    ``asyncio.run``. Either way everything the demo started stops and its data is deleted."""
    terminated = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signal handlers here
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
    try:
        await terminated.wait()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


async def _revocation(
    client: httpx.AsyncClient,
    issuer: str,
    idp: SimulatedIdP,
    members: dict[str, Member],
    timeline: Timeline,
    mint: Any,
    quick: bool,
    out: TextIO,
) -> bool:
    agent, tool = members["agent"], members["tool-server"]
    before = await call_tool(tool.url, auth=agent.extras["auth"])
    stale = agent.extras["cache"].get(agent.extras["auth"].key).token  # the agent's token now
    _say(out, f"  agent called the tool as {USER}: {describe(before)}")
    if not quick:
        await asyncio.sleep(1.0)

    token, jti = idp.revoke_session(issuer, time.time())
    ingest = {
        "Authorization": f"Bearer {mint('demo-idp', 'ssf.ingest')}",
        "Content-Type": "application/secevent+jwt",
    }
    timeline.mark("pushed", jti)
    r = await client.post(INGEST_PATH, content=token, headers=ingest)
    if r.status_code != 202:
        _say(out, f"  the hub refused the IdP's SET: {describe(r)}")
        return False
    timeline.mark("accepted", "202")
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(STEP_TIMEOUT):
            await timeline.wait(*(f"delivered:{n}" for n in RECEIVERS), "dropped")

    # A copy of the old token still in flight (another worker of the agent) is refused ...
    refused = await call_tool(tool.url, token=stale)
    if refused.status_code in (401, 403):
        timeline.mark("refused", describe(refused))
    # ... and the agent, whose cache dropped it, gets a fresh token and is served.
    served = await call_tool(tool.url, auth=agent.extras["auth"])
    if served.status_code == 200:
        timeline.mark("served", describe(served))
    _print_chain(timeline, members, out)
    return all(step in timeline.steps for step in CHAIN)


def _print_chain(timeline: Timeline, members: dict[str, Member], out: TextIO) -> None:
    start = timeline.steps.get("pushed", time.time())
    labels = {
        "pushed": "IdP pushed session-revoked for " + USER,
        "accepted": "hub accepted it",
        "dropped": "agent dropped its token",
        "refused": "tool refused the stale call",
        "served": "agent re-authenticated and was served",
    }
    labels |= {f"delivered:{n}": f"SET delivered to {n} (stream {members[n].stream_id})" for n in RECEIVERS}
    _say(out, "\nchain:")
    for step in CHAIN:
        at = timeline.steps.get(step)
        when = "    missing" if at is None else f"{(at - start) * 1000:9.1f} ms"
        detail = timeline.details.get(step, "")
        _say(out, f"  {when}  {labels[step]}" + (f"  [{detail}]" if detail else ""))
    if all(step in timeline.steps for step in CHAIN):
        total = (max(timeline.steps.values()) - start) * 1000
        _say(out, f"chain complete in {total:.1f} ms")
    else:
        _say(out, "chain INCOMPLETE: " + ", ".join(s for s in CHAIN if s not in timeline.steps))


async def _print_receipts(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    timeline: Timeline,
    members: dict[str, Member],
    out: TextIO,
) -> None:
    """What the hub holds per stream: delivery state and the receivers' receipts."""
    for member in members.values():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await member.receipts.drain()
    jti = timeline.details.get("pushed", "")
    r = await client.get(f"/ssf/admin/trace/demo-{jti[:12]}", headers=admin)
    if r.status_code != 200:
        return
    names = {m.stream_id: m.name for m in members.values()}
    _say(out, "\nat the hub (ssf-hub trace demo-" + jti[:12] + "):")
    for item in r.json()["sets"]:
        receipts = (
            ", ".join(f"{x['action']} x{x['count']}" for x in item["receipts"]) or "delivered, no receipt"
        )
        name = names.get(item["stream_id"], item["stream_id"])
        _say(out, f"  {name:<12} {item['state']:<10} receipts: {receipts}")
