"""Who plays in ``ssf-hub demo``: a simulated identity provider and three example receivers.

The IdP signs SETs with its own key (registered with the hub as a trusted issuer) and pushes
them to ``/ssf/ingest``; it also mints the users' access tokens (the examples' development
IdP). The receivers use the ``receivers`` library as a real deployment would: an agent with a
token cache calling a tool server, the tool server and an LLM gateway behind
``ContinuousAccessMiddleware``; each subscribes with a poll stream and reports remediation
receipts to the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from joserfc.jwk import ECKey

from hub.cli.issuers import sign_set
from receivers import (
    CachedTokenAuth,
    ContinuousAccess,
    Dispatcher,
    PollConsumer,
    ReceivedEvent,
    StaticToken,
    StreamClient,
    TokenCache,
)
from receivers.audit import REQUEST_REFUSED, TOKEN_DROPPED, AuditRecord
from receivers.dispatch import HandlerFailed
from receivers.events import SESSION_REVOKED
from receivers.examples import llm_gateway, tool_server
from receivers.examples._demo import DevIdentityProvider
from receivers.receipts import ReceiptSender

IDP_ISSUER = "https://idp.ssf-demo.invalid"
USER = "alice@example.com"
AGENT_ID = "spiffe://ssf-demo.invalid/agent/researcher"
SUBJECT = {"format": "email", "email": USER}


class Timeline:
    """What happened when (``time.time()``), in order; :meth:`wait` blocks until a step."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self.details: dict[str, str] = {}
        self._changed = asyncio.Event()

    def mark(self, step: str, detail: str = "") -> None:
        if step not in self.steps:
            self.steps[step] = time.time()
            self.details[step] = detail
            self._changed.set()

    async def wait(self, *steps: str) -> None:
        """Until every one of ``steps`` happened (bound it with ``asyncio.timeout``)."""
        while not all(s in self.steps for s in steps):
            self._changed.clear()
            await self._changed.wait()


class SimulatedIdP:
    """Signs SETs as :data:`IDP_ISSUER` and pushes them to the hub's ``/ssf/ingest``."""

    def __init__(self, directory: Path) -> None:
        self.users = DevIdentityProvider(directory)  # access tokens for users and agents
        key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"})
        key.ensure_kid()
        self.key = key

    def registration(self) -> dict[str, Any]:
        return {"iss": IDP_ISSUER, "jwks": {"keys": [self.key.as_dict(private=False)]}}

    def revoke_session(self, hub_issuer: str, at: float) -> tuple[str, str]:
        """A signed session-revoked SET for the demo user, and its jti."""
        jti = uuid.uuid4().hex
        claims = {
            "event_timestamp": at,
            "initiating_entity": "admin",
            "reason_admin": {"en": "ssf-hub demo: session revoked at the IdP"},
        }
        payload = {
            "iss": IDP_ISSUER,
            "jti": jti,
            "iat": int(at),
            "aud": hub_issuer,
            "txn": "demo-" + jti[:12],
            "sub_id": SUBJECT,
            "events": {SESSION_REVOKED: claims},
        }
        return sign_set(payload, self.key, "ES256"), jti


@dataclass
class Member:
    """One receiver: its stream, its library state, and its receipts sender."""

    name: str
    stream_id: str
    access: ContinuousAccess
    consumer: PollConsumer
    receipts: ReceiptSender
    url: str = ""
    extras: dict[str, Any] = field(default_factory=dict)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves Ctrl-C to the demo (several servers share one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def serve(app: Any, sock: socket.socket | None = None, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1; yields its base URL."""
    sock = sock or free_socket()
    port = sock.getsockname()[1]
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "lifespan": "off", "log_config": None}
    values.update(log_level="warning", timeout_graceful_shutdown=1, **options)
    server = QuietServer(uvicorn.Config(app, **values))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server exited before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=5)


async def subscribe(
    name: str,
    hub_issuer: str,
    token: str,
    http: httpx.AsyncClient,
    access: ContinuousAccess,
    timeline: Timeline,
) -> Member:
    """A poll stream for the demo user; marks when this receiver got the revocation."""
    client = await StreamClient.discover(hub_issuer, http=http, auth=StaticToken(token))
    stream = await client.create_stream(events_requested=[SESSION_REVOKED], description=f"demo {name}")
    await client.add_subject(stream.stream_id, SUBJECT)

    # Delivery is marked before the access object's own handlers act on the SET (drop a token,
    # refuse a caller), so the printed chain keeps its causal order.
    async def received(event: ReceivedEvent) -> None:
        if event.event_type == SESSION_REVOKED:
            timeline.mark(f"delivered:{name}", stream.stream_id)
        failures = await access.dispatcher.dispatch(event)
        if failures:
            raise HandlerFailed(event.jti, failures)

    delivered = Dispatcher()
    delivered.add("*", received)
    receipts = ReceiptSender.for_stream(client, stream.stream_id, interval=0.05)
    receipts.attach(access)
    consumer = client.poll_consumer(stream, dispatcher=delivered, request_timeout=30)
    return Member(name, stream.stream_id, access, consumer, receipts)


def on_audit(access: ContinuousAccess, action: str, step: str, timeline: Timeline) -> None:
    def sink(record: AuditRecord) -> None:
        if record.action == action:
            timeline.mark(step, str(record.detail.get("token") or record.detail.get("status") or ""))

    access.audit.add_sink(sink)


@contextlib.asynccontextmanager
async def receivers_running(
    hub_issuer: str, idp: SimulatedIdP, mint: Callable[[str], str], timeline: Timeline
) -> AsyncIterator[dict[str, Member]]:
    """The agent, the tool server and the LLM gateway, subscribed and running."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=40))
        identity = idp.users.identity()
        members: dict[str, Member] = {}

        tool_access = ContinuousAccess()
        on_audit(tool_access, REQUEST_REFUSED, "refused", timeline)
        tool = await subscribe("tool-server", hub_issuer, mint("tool-server"), http, tool_access, timeline)
        tool.url = await stack.enter_async_context(serve(tool_server.build_app(tool_access, identity)))
        members[tool.name] = tool

        gateway_access = ContinuousAccess()
        gateway = await subscribe(
            "llm-gateway", hub_issuer, mint("llm-gateway"), http, gateway_access, timeline
        )
        gateway.url = await stack.enter_async_context(serve(llm_gateway.build_app(gateway_access, identity)))
        members[gateway.name] = gateway

        cache = TokenCache(name="research-agent", holder=[{"format": "uri", "uri": AGENT_ID}])
        agent_access = ContinuousAccess(token_caches=[cache])
        on_audit(agent_access, TOKEN_DROPPED, "dropped", timeline)

        async def exchange() -> str:  # stands in for RFC 8693 token exchange at the IdP
            # A fractional iat: a token got right after the revocation postdates it.
            return idp.users.mint(USER, email=USER, act={"sub": AGENT_ID}, iat=time.time())

        auth = CachedTokenAuth(cache, exchange, key=(USER, tool.url))
        agent = await subscribe("agent", hub_issuer, mint("agent"), http, agent_access, timeline)
        agent.extras.update(cache=cache, auth=auth)
        members[agent.name] = agent

        for member in members.values():
            await stack.enter_async_context(member.receipts.running())
            await stack.enter_async_context(member.consumer.running())
        yield members


async def call_tool(url: str, *, auth: httpx.Auth | None = None, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(auth=auth, timeout=10) as tools:
        return await tools.post(url + "/tools/answer", json={"question": "status?"}, headers=headers)


def describe(response: httpx.Response) -> str:
    try:
        body = json.dumps(response.json())[:80]
    except ValueError:
        body = response.text[:80]
    return f"HTTP {response.status_code} {body}"
