"""What an operator sees (issue 13): /metrics that move, one log line per event with stable keys."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hub.logs import JsonFormatter, TextFormatter, event, fields_of
from tests.push.helpers import PUSH
from tests.support.hub import RunningHub, free_port, run_hub
from tests.support.process import SSF_HUB
from tests.support.receiver import Reply, eventually, push_receiver

ALICE = {"format": "email", "email": "alice@example.com"}


async def scrape(hub: RunningHub) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await hub.client.get("/metrics", headers=hub.auth("prometheus", "ssf.metrics"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict]:
    return [fields_of(r) for r in caplog.records if getattr(r, "ssf_event", None) == name]


# --- /metrics ----------------------------------------------------------------------------------------


async def test_metrics_need_the_metrics_or_admin_scope(hub: RunningHub) -> None:
    assert (await hub.client.get("/metrics")).status_code == 401
    assert (await hub.client.get("/metrics", headers=hub.auth())).status_code == 403  # ssf.manage
    assert (await hub.client.get("/metrics", headers=hub.auth("ops", "ssf.admin"))).status_code == 200
    assert (await hub.client.get("/metrics", headers=hub.auth("prom", "ssf.metrics"))).status_code == 200


async def test_metrics_can_be_public_on_a_private_network(tmp_path: Path) -> None:
    async with run_hub(tmp_path / "data", metrics_public=True) as hub:
        r = await hub.client.get("/metrics")
        assert r.status_code == 200 and "ssf_hub_sets_issued_total" in r.text


async def test_an_emit_moves_issued_and_the_queue_gauges(hub: RunningHub) -> None:
    before = await scrape(hub)
    s = await hub.create_stream()
    await hub.add_subject(s["stream_id"], ALICE)
    await hub.emit("session-revoked", ALICE)
    await hub.emit("session-revoked", {"format": "email", "email": "nobody@example.com"})
    assert hub.app is not None
    hub.app.state.store_gauges_at = float("-inf")  # the store gauges are cached 10 s between scrapes
    after = await scrape(hub)
    issued = "ssf_hub_sets_issued_total"
    assert value(after, issued, method="poll") - value(before, issued, method="poll") == 1
    unrouted = "ssf_hub_emits_unrouted_total"
    assert value(after, unrouted) - value(before, unrouted) == 1  # the event nobody subscribed to
    assert value(after, "ssf_hub_queue_depth") == 1
    assert value(after, "ssf_hub_streams", status="enabled", method="poll") == 1
    await hub.poll(s, ack=list((await hub.poll(s))["sets"]))
    latency = "ssf_hub_delivery_latency_seconds_count"
    assert value(await scrape(hub), latency, method="poll") - value(before, latency, method="poll") == 1
    delivered = "ssf_hub_sets_delivered_total"
    assert value(await scrape(hub), delivered, method="poll") - value(before, delivered, method="poll") == 1


async def test_a_failing_push_moves_attempts_and_logs_one_line_per_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    schedule = "0.05,0.05,0.05,60"
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path / "data", push_retry_schedule=schedule, allow_private_endpoints=True) as hub,
    ):
        receiver.default = Reply(503)
        before = await scrape(hub)
        delivery = {"method": PUSH, "endpoint_url": receiver.url}
        s = await hub.create_stream(delivery=delivery, events_requested=["session-revoked"])
        await hub.add_subject(s["stream_id"], ALICE)
        await hub.emit("session-revoked", ALICE)
        await eventually(lambda: len(events(caplog, "push_attempt_failed")) >= 3)
        after = await scrape(hub)
        attempts = "ssf_hub_push_attempts_total"
        assert value(after, attempts, outcome="retry") - value(before, attempts, outcome="retry") >= 3
        # Once the schedule reaches its 60 s step, the admin listing says when the next try is.
        retry_at: list[float] = []
        for _ in range(100):
            listed = await hub.client.get("/ssf/admin/streams", headers=hub.auth("secops", "ssf.admin"))
            retry_at = [r["next_retry_at"] for r in listed.json() if r["next_retry_at"]]
            if retry_at and retry_at[0] > time.time() + 30:
                break
            await asyncio.sleep(0.1)
        assert retry_at and retry_at[0] > time.time() + 30, retry_at
        first = events(caplog, "push_attempt_failed")[0]
        assert first["stream_id"] == s["stream_id"]
        assert first["host"] == "127.0.0.1"
        assert first["attempt"] == 1
        assert first["outcome"] == "retry"
        assert first["error"].startswith("HTTP 503")
        assert first["next_retry_at"].endswith("Z")
        assert not any(
            "authorization" in json.dumps(e).lower() for e in events(caplog, "push_attempt_failed")
        )


async def test_an_ingest_refusal_is_counted_and_logged_with_its_reason(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = await scrape(hub)
    payload = '{"iss": "https://stranger.example", "jti": "j1"}'
    part = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    r = await hub.client.post(
        "/ssf/ingest",
        content=f"eyJhbGciOiJSUzI1NiJ9.{part}.c2ln",
        headers={**hub.auth("idp", "ssf.ingest"), "content-type": "application/secevent+jwt"},
    )
    assert r.json()["err"] == "invalid_issuer"
    after = await scrape(hub)
    name = "ssf_hub_ingest_total"
    labels = {"issuer": "unregistered", "result": "invalid_issuer"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1
    (line,) = events(caplog, "ingest_refused")
    assert line == {
        "issuer": "https://stranger.example",
        "status": 400,
        "err": "invalid_issuer",
        "description": r.json()["description"],
    }


async def test_a_status_change_names_who_made_it(hub: RunningHub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    s = await hub.create_stream()
    r = await hub.client.post(
        f"/ssf/admin/streams/{s['stream_id']}/status",
        json={"status": "paused", "reason": "maintenance"},
        headers=hub.auth("secops", "ssf.admin"),
    )
    assert r.status_code == 200, r.text
    (line,) = events(caplog, "stream_status_changed")
    assert line == {
        "stream_id": s["stream_id"],
        "status": "paused",
        "previous": "enabled",
        "by": "secops",
        "reason": "maintenance",
    }


# --- the two log formats ---------------------------------------------------------------------------


def _record(name: str, **fields: object) -> logging.LogRecord:
    logger = logging.getLogger("hub.test")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        event(logger, logging.WARNING, name, **fields)
    finally:
        logger.removeHandler(handler)
    return records[0]


def test_json_lines_carry_the_event_and_its_keys() -> None:
    record = _record("push_attempt_failed", stream_id="s1", attempt=2, error="HTTP 503: " + "x" * 400)
    line = json.loads(JsonFormatter().format(record))
    assert (
        line["event"] == "push_attempt_failed" and line["level"] == "warning" and line["logger"] == "hub.test"
    )
    assert line["stream_id"] == "s1" and line["attempt"] == 2
    assert len(line["error"]) == 303  # cut at 300 characters
    assert line["ts"].endswith("Z")


def test_text_lines_are_key_value_pairs_after_the_event_name() -> None:
    record = _record("stream_status_changed", stream_id="s1", reason="delivery failing: HTTP 503", by="hub")
    text = TextFormatter().format(record)
    assert text.endswith(
        'hub.test: stream_status_changed stream_id=s1 reason="delivery failing: HTTP 503" by=hub'
    )


def test_serve_writes_json_lines_and_no_scheduler_noise(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSF_HUB_")}
    env["SSF_HUB_LOG_FORMAT"] = "json"
    proc = subprocess.Popen(
        [SSF_HUB, "serve", "--data-dir", str(tmp_path / "d"), "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        httpx.get(f"http://127.0.0.1:{port}/ssf/stream", headers={"Authorization": "Bearer nope"})
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert lines, "no log output"
    assert all({"ts", "level", "logger"} <= set(line) for line in lines)
    assert any(line.get("message", "").startswith("refused GET /ssf/stream: 401") for line in lines)
    assert not any("Adding job tentatively" in line.get("message", "") for line in lines)
    assert not any("Bearer nope" in json.dumps(line) for line in lines)
