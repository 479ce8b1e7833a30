"""The console in a real browser (Debian's chromium, headless; issue #14).

A security operator signs in with an admin token, sees the streams, runs a revocation drill
and watches every stream reach "delivered" and the receivers' receipts arrive, pauses and
enables a stream, and finds the drill's txn. Every page is screenshotted under the test's
tmp_path, and no page may log a console error or a CSP violation. Set
``SSF_HUB_DRILL_SCREENSHOT=docs/console-drill.png`` to also write the drill page there (the
README's picture).

These tests never skip: without chromium they fail (tests/check.sh installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from receivers import ContinuousAccess, StaticToken, StreamClient, TokenCache
from receivers.events import SESSION_REVOKED
from receivers.receipts import ReceiptSender
from tests.push.helpers import ALICE, PUSH, jti_of
from tests.support.hub import RunningHub
from tests.support.receiver import PushReceiver, push_receiver

pytestmark = pytest.mark.timeout(180)

PUSH_SECRET = "Bearer tool-secret-4e1d-never-in-the-console"
# An init script runs before the page's own and is not subject to its CSP: it turns every
# CSP violation into a console error the test collects.
REPORT_CSP = (
    "document.addEventListener('securitypolicyviolation', e => "
    "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
)


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: bash tests/check.sh installs the Debian package"
    return found


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Console:
    page: Page
    hub: RunningHub
    shots: Path
    errors: list[str] = field(default_factory=list)

    async def open(self, fragment: str) -> None:
        await self.page.goto(f"{self.hub.base_url}/console#{fragment}")

    async def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 1000
        return path

    async def sign_in(self, token: str) -> None:
        await self.page.goto(f"{self.hub.base_url}/console")
        await expect(self.page.locator("#sign-in")).to_be_visible()
        await self.page.fill("#token", token)
        await self.page.click("#sign-in-form button")


async def open_console(browser: Browser, hub: RunningHub, shots: Path) -> Console:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    console = Console(page, hub, shots)
    await page.add_init_script(REPORT_CSP)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console.errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: console.errors.append(f"page error: {exc}"))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return console


@dataclass
class Receivers:
    """An agent (poll, the receivers library with a token cache and receipts), a tool server
    and an LLM gateway (push); the tool server reports refusing the stale call."""

    agent_stream: str
    tool_stream: str
    gateway_stream: str
    cache: TokenCache
    tool: PushReceiver


@contextlib.asynccontextmanager
async def three_receivers(hub: RunningHub) -> AsyncIterator[Receivers]:
    async with push_receiver() as tool, push_receiver() as gateway, httpx.AsyncClient(timeout=10) as http:
        tool_stream = await hub.create_stream(
            "tool-server",
            delivery={"method": PUSH, "endpoint_url": tool.url, "authorization_header": PUSH_SECRET},
            description="tool server",
        )
        gateway_stream = await hub.create_stream(
            "llm-gateway", delivery={"method": PUSH, "endpoint_url": gateway.url}, description="LLM gateway"
        )
        for stream, owner in ((tool_stream, "tool-server"), (gateway_stream, "llm-gateway")):
            await hub.add_subject(stream["stream_id"], ALICE, sub=owner)

        client = await StreamClient.discover(hub.issuer, http=http, auth=StaticToken(hub.token("agent-1")))
        agent = await client.create_stream(events_requested=[SESSION_REVOKED], description="research agent")
        await client.add_subject(agent.stream_id, ALICE)
        cache = TokenCache(name="research-agent")
        cache.put("alice", hub.token("alice@example.com", "ssf.read"), subjects=[ALICE])
        access = ContinuousAccess(token_caches=[cache])
        agent_receipts = ReceiptSender.for_stream(client, agent.stream_id, interval=0.05)
        agent_receipts.attach(access)
        tool_receipts = ReceiptSender(
            hub.issuer + "/ssf/receipts",
            tool_stream["stream_id"],
            http=http,
            auth=StaticToken(hub.token("tool-server")),
            interval=0.05,
        )

        async def tool_refuses_stale_calls() -> None:
            seen = 0
            while True:
                await tool.wait_for(seen + 1, timeout=3600)
                for received in tool.received[seen:]:
                    tool_receipts.report(jti_of(received.body), "request_refused", count=2)
                seen = len(tool.received)

        consumer = client.poll_consumer(agent, dispatcher=access.dispatcher, request_timeout=10)
        refusing = asyncio.create_task(tool_refuses_stale_calls())
        try:
            async with agent_receipts.running(), tool_receipts.running(), consumer.running():
                yield Receivers(
                    agent.stream_id, tool_stream["stream_id"], gateway_stream["stream_id"], cache, tool
                )
        finally:
            refusing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refusing


def assert_no_secret(html: str, *tokens: str) -> None:
    assert "tool-secret-4e1d" not in html
    for token in tokens:
        assert token not in html and token.split(".")[2] not in html


async def test_an_operator_drills_a_revocation_end_to_end(
    hub: RunningHub, browser: Browser, tmp_path: Path
) -> None:
    admin_token = hub.token("secops", "ssf.admin")
    console = await open_console(browser, hub, tmp_path)
    page = console.page
    async with three_receivers(hub) as receivers:
        # Sign in: the overview counts the three streams.
        await console.sign_in(admin_token)
        await expect(page.locator("#streams-total")).to_have_text("3")
        await console.shot("overview")
        assert await page.evaluate("document.cookie") == ""
        assert await page.evaluate("sessionStorage.getItem('ssf-hub-console-token')") == admin_token

        # Streams: every receiver is listed, with no secret in the page.
        await page.click("nav >> text=Streams")
        await expect(page.locator(f"tr[data-stream='{receivers.tool_stream}']")).to_contain_text(
            "tool-server"
        )
        await expect(page.locator("#streams-table tbody tr")).to_have_count(3)
        await console.shot("streams")
        assert_no_secret(await page.content(), admin_token)

        # Drill: session-revoked for Alice; every stream reaches delivered, receipts arrive.
        await page.click("nav >> text=Drill")
        await expect(page.locator("#drill-form")).to_be_visible()
        await page.fill("input[name='email']", "alice@example.com")
        await page.click("#drill-send")
        rows = page.locator("#fanout-rows tr.fanout-row")
        await expect(rows).to_have_count(3, timeout=15_000)
        for stream_id in (receivers.agent_stream, receivers.tool_stream, receivers.gateway_stream):
            row = page.locator(f"#fanout-rows tr[data-stream='{stream_id}']")
            await expect(row.locator(".state")).to_have_text("delivered", timeout=15_000)
        agent_row = page.locator(f"#fanout-rows tr[data-stream='{receivers.agent_stream}']")
        tool_row = page.locator(f"#fanout-rows tr[data-stream='{receivers.tool_stream}']")
        await expect(agent_row.locator(".receipt")).to_contain_text("token_dropped", timeout=15_000)
        await expect(tool_row.locator(".receipt")).to_contain_text("request_refused", timeout=15_000)
        assert len(receivers.cache) == 0  # the agent really dropped Alice's token
        txn = (await page.locator("#drill-txn").text_content() or "").strip()
        drill_shot = await console.shot("drill")
        if target := os.environ.get("SSF_HUB_DRILL_SCREENSHOT"):
            shutil.copyfile(drill_shot, target)
        assert_no_secret(await page.content(), admin_token)

        # Pause and enable the tool server's stream from its page.
        await console.open(f"/streams/{receivers.tool_stream}")
        await expect(page.locator("#stream-status")).to_have_text("enabled")
        assert "never shown" in await page.locator("#stream-config").inner_text()
        await page.fill("form:has(#action-paused) input[name='reason']", "drill: pause test")
        await page.click("#action-paused")
        await expect(page.locator("#stream-status")).to_have_text("paused")
        await console.shot("stream-paused")
        await page.click("#action-enabled")
        await expect(page.locator("#stream-status")).to_have_text("enabled")
        assert_no_secret(await page.content(), admin_token)

        # Trace: the drill's txn, one row per stream with its receipts.
        await page.click("nav >> text=Trace")
        await page.fill("input[name='ident']", txn)
        await page.click("form[data-get='/trace'] button")
        await expect(page.locator("#trace-table tbody tr")).to_have_count(3)
        await expect(page.locator("#trace-table")).to_contain_text("token_dropped")
        await expect(page.locator("p.audit-line .drill")).to_have_text("drill")
        await console.shot("trace")

        # Issuers and upstreams, and the audit: the drill is marked as one.
        await page.click("nav >> text=Issuers")
        await expect(page.locator("main h1")).to_have_text("Issuers and upstreams")
        await console.shot("sources")
        await page.click("nav >> text=Audit")
        await expect(page.locator("#audit-table")).to_contain_text("drill")
        await console.shot("audit")
        assert_no_secret(await page.content(), admin_token)

        # A crafted link cannot make the console render another endpoint's answer.
        await console.open("/../../ssf/admin/streams")
        await expect(page.locator("#notice")).to_contain_text("no such console page")
        assert "authorization_header" not in await page.locator("main").inner_html()

    assert console.errors == []


async def test_a_receiver_token_cannot_open_the_console(
    hub: RunningHub, browser: Browser, tmp_path: Path
) -> None:
    console = await open_console(browser, hub, tmp_path)
    await console.sign_in(hub.token("agent-1", "ssf.manage"))

    await expect(console.page.locator("#notice")).to_contain_text("no ssf.admin scope")
    await expect(console.page.locator("#sign-in")).to_be_visible()
    await expect(console.page.locator("#nav")).to_be_hidden()
    assert await console.page.evaluate("sessionStorage.getItem('ssf-hub-console-token')") is None
    await console.shot("refused")
    # The only error is the browser noting the 403 itself: no CSP violation, no script error.
    assert [e for e in console.errors if "403" not in e] == []
