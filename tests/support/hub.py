"""Run a real hub on a free loopback port for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from joserfc.jwk import ECKey
from starlette.applications import Starlette

from hub.auth.tokens import mint_local_token
from hub.config import Settings, load_settings
from hub.core.discovery import issuer_path, well_known_path
from hub.keys.ring import load_or_create_token_key
from hub.web.app import create_app
from hub.web.openapi import openapi_document
from hub.web.server import ReadDeadlines, server_config
from tests.support.openapi import ResponseChecker
from tests.support.sets import verify_set


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningHub:
    settings: Settings
    base_url: str
    client: httpx.AsyncClient
    app: Starlette | None = None  # in this process: ``app.state.hub`` is the running hub's context
    token_key: ECKey | None = None  # the key the hub's local tokens are signed with (any store)
    responses: ResponseChecker | None = None  # checks every answer against /openapi.json

    @property
    def issuer(self) -> str:
        return self.settings.issuer_url

    def token(self, sub: str = "receiver-1", scope: str = "ssf.manage", ttl: int = 300) -> str:
        key = self.token_key or load_or_create_token_key(self.settings.data_dir)
        return mint_local_token(key, sub=sub, scope=scope, ttl=ttl, now=time.time())

    def auth(self, sub: str = "receiver-1", scope: str = "ssf.manage") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub, scope)}"}

    async def metadata(self) -> dict[str, Any]:
        r = await self.client.get("/.well-known/ssf-configuration")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def jwks(self) -> dict[str, Any]:
        r = await self.client.get((await self.metadata())["jwks_uri"])
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def create_stream(self, sub: str = "receiver-1", **body: Any) -> dict[str, Any]:
        body.setdefault("events_requested", [CAEP + "session-revoked", CAEP + "credential-change"])
        r = await self.client.post("/ssf/stream", json=body, headers=self.auth(sub))
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    async def add_subject(self, stream_id: str, subject: Mapping[str, Any], sub: str = "receiver-1") -> None:
        r = await self.client.post(
            "/ssf/subjects:add", json={"stream_id": stream_id, "subject": subject}, headers=self.auth(sub)
        )
        assert r.status_code == 200, r.text

    async def emit(self, event: str, subject: Mapping[str, Any], **claims: Any) -> dict[str, Any]:
        r = await self.client.post(
            "/ssf/admin/events",
            json={"event": event, "subject": subject, "claims": claims},
            headers=self.auth("operator", "ssf.admin"),
        )
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def poll(self, stream: Mapping[str, Any], sub: str = "receiver-1", **body: Any) -> dict[str, Any]:
        """Poll a stream; every SET received is verified against the served JWKS."""
        body.setdefault("returnImmediately", True)
        r = await self.client.post(stream["delivery"]["endpoint_url"], json=body, headers=self.auth(sub))
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        if data["sets"]:
            jwks = await self.jwks()
            for jti, token in data["sets"].items():
                assert verify_set(token, jwks, iss=self.issuer, aud=stream["aud"])["jti"] == jti
        return data

    async def poll_verified(
        self, stream: Mapping[str, Any], sub: str = "receiver-1", **body: Any
    ) -> list[dict[str, Any]]:
        """Poll and verify every SET against the served JWKS; returns the claims in jti order given."""
        data = await self.poll(stream, sub, **body)
        jwks = await self.jwks()
        return [verify_set(tok, jwks, iss=self.issuer, aud=stream["aud"]) for tok in data["sets"].values()]


# For a test that should pass on both stores: ``@on_each_store`` runs it once with the
# ``hub`` fixture on SQLite and once on the session's redis-server (tests/conftest.py).
on_each_store = pytest.mark.parametrize("hub", ["sqlite", "redis"], indirect=True)

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"


@contextlib.asynccontextmanager
async def run_hub(
    data_dir: Path, *, app_kwargs: Mapping[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[RunningHub]:
    """``overrides`` are settings; ``app_kwargs`` go to ``create_app`` (e.g. ``resolver=``)."""
    # The socket is bound before the hub is built (its issuer URL names the port) and handed
    # to uvicorn, so no other test's server can take the port in between.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", int(overrides.get("port", 0))))
        async with _serve_hub(sock, data_dir, app_kwargs, overrides) as hub:
            yield hub


@contextlib.asynccontextmanager
async def _serve_hub(
    sock: socket.socket, data_dir: Path, app_kwargs: Mapping[str, Any] | None, overrides: Mapping[str, Any]
) -> AsyncIterator[RunningHub]:
    port = sock.getsockname()[1]
    # No signing process by default: a child per in-process test hub costs seconds of CPU over
    # the suite; tests of the signing process ask for one, and `ssf-hub serve` tests get it.
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "port": port,
        "min_verification_interval": 0,
        "signing_processes": 0,
    }
    values.update(overrides)
    values["port"] = port
    settings = load_settings(environ={}, overrides=values)
    app = create_app(settings, **(app_kwargs or {}))
    deadlines = ReadDeadlines.from_settings(settings)
    config = server_config(
        app,
        settings,
        deadlines,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            raise RuntimeError("hub did not start")
        base = f"http://127.0.0.1:{port}"
        issuer = settings.issuer_url
        checker = ResponseChecker(openapi_document(issuer, issuer_path(issuer), well_known_path(issuer)))
        hooks = {"response": [checker.hook(base)]}
        async with httpx.AsyncClient(base_url=base, timeout=40, event_hooks=hooks) as client:
            # From the hub's own key storage: on Redis the key is in the store, not the data dir.
            token_key = await app.state.hub.key_storage.token_key()
            yield RunningHub(settings, base, client, app, token_key, checker)
    finally:
        server.should_exit = True
        await task
