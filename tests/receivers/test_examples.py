"""The runnable examples: the services they build refuse revoked callers and keep streaming."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from receivers import ContinuousAccess, ReceivedEvent
from receivers.events import SESSION_REVOKED
from receivers.examples import agent, llm_gateway, tool_server
from receivers.examples._demo import TRUST_DOMAIN, DevIdentityProvider

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

        access.revoke(revocation(time.time() + 1))
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
