"""The runnable examples: the services they build refuse revoked callers and keep streaming."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from receivers import BearerJwtIdentity, ClientCredentials, ContinuousAccess, JwtVerifier, ReceivedEvent
from receivers.events import SESSION_REVOKED
from receivers.examples import agent, llm_gateway, tool_server
from receivers.examples._demo import TRUST_DOMAIN, DevIdentityProvider, common_arguments, subscribe
from receivers.jwks import StaticKeys
from tests.receivers.support import AGENT_ID, FakeAuthServer, serve_auth_server
from tests.support.hub import RunningHub, free_port, run_hub

ALICE = {"format": "email", "email": "alice@example.com"}


def revocation(at: float) -> ReceivedEvent:
    events = {SESSION_REVOKED: {"event_timestamp": at}}
    return ReceivedEvent(iss="https://hub", jti="j", iat=at, aud=("x",), subject=ALICE, events=events)


async def test_the_tool_server_and_gateway_refuse_a_revoked_caller(tmp_path: Path) -> None:
    idp = DevIdentityProvider(tmp_path)
    assert DevIdentityProvider(tmp_path).key.kid == idp.key.kid  # the key persists for the other side
    assert (tmp_path / "idp.json").stat().st_mode & 0o777 == 0o600
    access = ContinuousAccess()
    token = idp.mint("alice@example.com", email="alice@example.com", act={"sub": agent.AGENT_ID})
    headers = {"Authorization": f"Bearer {token}"}
    tools = httpx.ASGITransport(app=tool_server.build_app(access, idp.identity()))
    gateway = httpx.ASGITransport(app=llm_gateway.build_app(access, idp.identity()))
    async with (
        httpx.AsyncClient(transport=tools, base_url="http://t") as t,
        httpx.AsyncClient(transport=gateway, base_url="http://g") as g,
    ):
        assert (
            (await t.post("/tools/answer", json={"question": "q"}, headers=headers))
            .json()["answer"]
            .startswith("42")
        )
        chat = {"messages": [{"role": "user", "content": "hello there"}]}
        r = await g.post("/v1/chat/completions", json=chat, headers=headers)
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.text.count("data: ") >= 3 and r.text.endswith("data: [DONE]\n\n")
        txn = idp.mint(
            "alice@example.com", typ="txntoken+jwt", aud=TRUST_DOMAIN, req_wl=agent.AGENT_ID, txn="t1"
        )
        assert (
            await g.post("/v1/chat/completions", json=chat, headers={"Txn-Token": txn})
        ).status_code == 200

        await access.revoke(revocation(time.time() + 1))
        assert (await t.post("/tools/answer", headers=headers)).status_code == 401
        assert (await g.post("/v1/chat/completions", json=chat, headers=headers)).status_code == 401
        assert (
            await g.post("/v1/chat/completions", json=chat, headers={"Txn-Token": txn})
        ).status_code == 401


@pytest.mark.parametrize("module", [agent, tool_server, llm_gateway])
def test_each_example_has_a_command_line(module: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])  # type: ignore[attr-defined]
    assert info.value.code == 0
    assert "--hub" in capsys.readouterr().out


def test_examples_started_together_agree_on_one_development_idp_key(tmp_path: Path) -> None:
    # compose starts the tool server, the gateway and the agent at once on one volume.
    with ThreadPoolExecutor(max_workers=8) as pool:
        kids = set(pool.map(lambda _: DevIdentityProvider(tmp_path).key.kid, range(16)))
    assert len(kids) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["idp.json"]  # no temporary files left behind


# -- the README's receivers examples, run against a real hub ----------------------------------------


def readme_blocks() -> list[str]:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## The receivers library") :]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    return [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]


class LoopbackConfig:
    """Stands in for ``uvicorn.Config`` in the README blocks: same app and port, on 127.0.0.1."""

    def __init__(self, app: Any, port: int, **_: Any) -> None:
        self.app, self.port = app, port


class LoopbackServer:
    """``uvicorn.Server`` that really serves, and shuts down cleanly when its task is cancelled."""

    def __init__(self, config: LoopbackConfig) -> None:
        real = uvicorn.Config(
            config.app, host="127.0.0.1", port=config.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(real)

    async def serve(self) -> None:
        task = asyncio.create_task(self.server.serve())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.server.should_exit = True
            await task
            raise


def run_block(block: str, **names: Any) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(block, "<README>", "exec"), namespace)
    namespace.update(names)  # e.g. uvicorn: LoopbackServer; print: a recorder
    return namespace


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
async def deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[RunningHub, FakeAuthServer, Any]]:
    """A hub that accepts an OAuth client's tokens, and the README's `hub` connected to it."""
    async with serve_auth_server(FakeAuthServer()) as idp:
        idp.clients["tool-server"] = "s3cret"
        issuers = [{"issuer": idp.issuer, "jwks_uri": idp.issuer + "/jwks", "audience": "ssf-hub"}]
        async with run_hub(
            tmp_path / "data",
            external_issuers=issuers,
            long_poll_seconds=1.0,
            allow_private_endpoints=True,
            push_retry_schedule="0.05",
        ) as hub:
            monkeypatch.setenv("SSF_HUB_URL", hub.issuer)
            monkeypatch.setenv("SSF_TOKEN_URL", idp.issuer + "/token")
            monkeypatch.setenv("SSF_CLIENT_SECRET", "s3cret")
            connect = run_block(readme_blocks()[0])
            yield hub, idp, connect["hub"]


async def test_the_readme_agent_and_tool_server_act_on_a_revocation(
    deployment: tuple[RunningHub, FakeAuthServer, Any],
) -> None:
    hub, idp, connected = deployment
    _, agent_block, tools_block, _ = readme_blocks()
    lines: list[tuple[str, int]] = []
    agent_example = run_block(agent_block, print=lambda user, status: lines.append((user, status)))
    tools_example = run_block(
        tools_block, uvicorn=SimpleNamespace(Server=LoopbackServer, Config=LoopbackConfig)
    )
    exchanged: list[Any] = []

    def exchange(key: tuple[str, str]) -> str:  # token exchange at the IdP: the agent acts for the user
        exchanged.append(key)
        user, audience = key
        return idp.mint(user, email=user, aud=audience, act={"sub": AGENT_ID})

    port = free_port()
    tools = Starlette(routes=[Route("/tools/answer", tool_server.answer, methods=["POST"])])
    serving = asyncio.create_task(tools_example["serve_tools"](connected, tools, [ALICE], idp.issuer, port))
    await until(lambda: tools_reachable(port))
    acting = asyncio.create_task(
        agent_example["agent"](
            connected, f"http://127.0.0.1:{port}/tools/answer", exchange, ["alice@example.com"]
        )
    )
    try:
        await until(lambda: ("alice@example.com", 200) in lines)
        assert exchanged == [("alice@example.com", "tools")]
        assert ClientCredentials.__name__ in readme_blocks()[0]  # the services authenticate with it
        await hub.emit("session-revoked", ALICE)
        await until(lambda: len(exchanged) >= 2)  # the agent's cache dropped Alice's token
        seen = len(lines)
        await until(lambda: lines[seen:].count(("alice@example.com", 200)) >= 1)  # a fresh token works
    finally:
        await stop(acting)
        await stop(serving)
    streams = (await hub.client.get("/ssf/admin/streams", headers=hub.auth("op", "ssf.admin"))).json()
    assert sorted(s.get("description") for s in streams) == ["agent", "tools"]  # found again on restart


def tools_reachable(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


async def test_the_readme_gateway_subscribes_by_push_and_applies_its_policy(
    deployment: tuple[RunningHub, FakeAuthServer, Any],
) -> None:
    hub, idp, connected = deployment
    example = run_block(
        readme_blocks()[3], uvicorn=SimpleNamespace(Server=LoopbackServer, Config=LoopbackConfig)
    )
    verifier = JwtVerifier(StaticKeys([idp.key]), issuer=idp.issuer, audience="tools")
    llm = Starlette(routes=[Route("/v1/chat/completions", llm_gateway.completions, methods=["POST"])])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serving = asyncio.create_task(
        example["serve_gateway"](connected, llm, BearerJwtIdentity(verifier), [ALICE], url, port)
    )
    token = idp.mint("alice@example.com", email="alice@example.com")
    chat = {"messages": [{"role": "user", "content": "hello"}]}
    try:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
            await until(lambda: tools_reachable(port))

            async def status() -> int:
                return (await client.post("/v1/chat/completions", json=chat)).status_code

            deadline = asyncio.get_running_loop().time() + 10
            listing: list[dict[str, Any]] = []
            # Subscribed before the emit: the stream is listed as soon as it is created, but its
            # subjects are added after that; a verification pushed and accepted comes after both.
            while not (listing and listing[0]["last_success_at"] is not None):
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
                r = await hub.client.get("/ssf/admin/streams", headers=hub.auth("op", "ssf.admin"))
                listing = [s for s in r.json() if s.get("description") == f"receivers push {url}/ssf/push/"]
            assert await status() == 200
            await hub.emit("risk-level-change", ALICE, principal="USER", current_level="HIGH")
            deadline = asyncio.get_running_loop().time() + 10
            while (code := await status()) == 200:
                assert asyncio.get_running_loop().time() < deadline, "the policy never denied"
                await asyncio.sleep(0.05)
            assert code == 403
    finally:
        await stop(serving)


async def test_the_demo_examples_subscribe_and_find_their_stream_again(tmp_path: Path) -> None:
    async with run_hub(tmp_path / "data", long_poll_seconds=1.0) as hub:
        args = tool_server_arguments(hub)
        async with subscribe(args, ContinuousAccess(), name="example tool server") as first:
            assert first.created
        async with subscribe(args, ContinuousAccess(), name="example tool server") as again:
            assert again.stream_id == first.stream_id and not again.created


def tool_server_arguments(hub: RunningHub) -> Any:
    parser = argparse.ArgumentParser()
    common_arguments(parser, "tool-server")
    return parser.parse_args(["--hub", hub.issuer, "--token-command", f"echo {hub.token('tool-server')}"])
