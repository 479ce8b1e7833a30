"""Push delivery end to end over real loopback HTTP (RFC 8935, R-PUSH-*): the request the
hub sends, how it reads each class of answer, and retries after failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.push.helpers import (
    ALICE,
    BOB,
    FAST,
    FakeDNS,
    emit_one,
    jti_of,
    push_stream,
    stream_view,
    trace_of,
    until,
    until_state,
)
from tests.support.hub import CAEP, RunningHub, free_port, run_hub
from tests.support.receiver import Reply, dropping_proxy, push_receiver, raw_http_server
from tests.support.sets import verify_set

PERMANENT_ERRS = ["invalid_request", "invalid_key", "invalid_issuer", "invalid_audience", "invalid_state"]


def port_of(url: str) -> int:
    return int(url.split(":")[2].split("/")[0])


# -- the request (R-PUSH-1) ---------------------------------------------------------------------------


async def test_a_pushed_set_is_one_signed_jwt_with_the_rfc_8935_headers(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:  # R-PUSH-1
    async with (
        push_receiver() as with_auth,
        push_receiver() as without_auth,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True) as hub,
    ):
        a = await push_stream(hub, with_auth.url, sub="rcv-a", authorization="Bearer rcv-secret")
        b = await push_stream(hub, without_auth.url, sub="rcv-b")
        assert a["delivery"]["authorization_header"] == "Bearer rcv-secret"
        assert "authorization_header" not in b["delivery"]
        sent = {s["stream_id"]: s["jti"] for s in (await hub.emit("session-revoked", ALICE))["sets"]}

        (got_a,) = await with_auth.wait_for(1)
        (got_b,) = await without_auth.wait_for(1)
        jwks = await hub.jwks()
        for got, stream in ((got_a, a), (got_b, b)):
            assert got.headers["content-type"] == "application/secevent+jwt"
            assert got.headers["accept"] == "application/json"
            assert got.body.count(".") == 2  # the body is exactly one compact JWT, nothing around it
            claims = verify_set(got.body, jwks, iss=hub.issuer, aud=stream["aud"])
            assert claims["jti"] == sent[stream["stream_id"]]
            assert list(claims["events"]) == [CAEP + "session-revoked"]
            assert claims["sub_id"] == ALICE
        # The Authorization header is sent exactly as configured, and not at all otherwise.
        assert got_a.headers["authorization"] == "Bearer rcv-secret"
        assert "authorization" not in got_b.headers
        for stream in (a, b):
            await until_state(hub, sent[stream["stream_id"]], "delivered")
        # The receiver's secret is not shown to operators either.
        assert "authorization_header" not in (await stream_view(hub, a["stream_id"]))["delivery"]


async def test_the_hub_connects_to_the_address_it_checked_and_keeps_the_name_in_host(tmp_path: Path) -> None:
    # SSRF guard (delivery.md §10): the name is resolved by the hub's resolver, the request goes
    # to the checked address; the HTTP client never resolves the name again.
    dns = FakeDNS({"receiver.test": ["127.0.0.1"]})
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, app_kwargs={"resolver": dns}, allow_private_endpoints=True) as hub,
    ):
        port = port_of(receiver.url)
        await push_stream(hub, f"http://receiver.test:{port}/events")
        assert dns.lookups == ["receiver.test"]  # checked at create
        jti = await emit_one(hub)
        (got,) = await receiver.wait_for(1)
        assert jti_of(got.body) == jti
        assert got.headers["host"] == f"receiver.test:{port}"
        assert dns.lookups == ["receiver.test", "receiver.test"]  # and again before the attempt


# -- outcome classes (R-PUSH-4..8) --------------------------------------------------------------------


async def test_any_2xx_marks_the_set_delivered_after_one_request(tmp_path: Path) -> None:  # R-PUSH-4
    async with push_receiver() as receiver, run_hub(tmp_path, allow_private_endpoints=True) as hub:
        statuses = [200, 201, 202, 204]
        receiver.then(*(Reply(s) for s in statuses))
        await push_stream(hub, receiver.url)
        jtis = [await emit_one(hub) for _ in statuses]
        await receiver.wait_for(len(statuses))
        for jti, status in zip(jtis, statuses, strict=True):
            t = await until_state(hub, jti, "delivered")
            assert [(a["outcome"], a["status"]) for a in t["attempts"]] == [("delivered", status)]
        assert [jti_of(b) for b in receiver.bodies()] == jtis


async def test_a_400_with_a_registered_err_is_permanent_and_the_next_set_still_goes(tmp_path: Path) -> None:
    # R-PUSH-5, R-PUSH-6, R-PUSH-8: resending a SET the receiver refused for good changes nothing.
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        receiver.then(
            *(Reply(400, json={"err": err, "description": f"refused: {err}"}) for err in PERMANENT_ERRS),
            Reply(413),  # the same bytes will always be too large
        )
        stream = await push_stream(hub, receiver.url)
        refused = [await emit_one(hub) for _ in range(len(PERMANENT_ERRS) + 1)]
        following = await emit_one(hub)
        assert await receiver.wait_accepted(1) == receiver.bodies()[-1:]
        # Each SET was sent once: refused ones are not retried, and did not block the stream.
        assert [jti_of(b) for b in receiver.bodies()] == [*refused, following]
        for jti, err in zip(refused, [*PERMANENT_ERRS, None], strict=True):
            t = await trace_of(hub, jti)
            assert t["state"] == "failed", t
            (attempt,) = t["attempts"]
            assert attempt["outcome"] == "permanent"
            assert attempt["status"] == (400 if err else 413)
            if err:  # the trace says why: the receiver's err and description
                assert f"{err}: refused: {err}" in attempt["error"], attempt
        assert (await until_state(hub, following, "delivered"))["attempts"][0]["status"] == 202
        view = await stream_view(hub, stream["stream_id"])
        assert view["status"] == "enabled" and view["queued"] == 0


async def test_refused_credentials_are_retried_and_flag_the_stream_until_a_success(tmp_path: Path) -> None:
    # R-PUSH-6, R-PUSH-7, R-PUSH-8: authentication_failed / access_denied may clear once the
    # receiver's credentials are fixed, and so may a plain 401 or 403.
    refusals = [
        Reply(400, json={"err": "authentication_failed", "description": "bad token"}),
        Reply(400, json={"err": "access_denied"}),
        Reply(401, headers={"WWW-Authenticate": 'Bearer realm="rcv"'}),
        Reply(403),
    ]
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        stream = await push_stream(hub, receiver.url, authorization="Bearer stale")
        sid = stream["stream_id"]
        assert (await stream_view(hub, sid))["credentials_failing"] is False
        for refusal in refusals:
            receiver.default = refusal
            before = len(receiver.received)
            jti = await emit_one(hub)

            async def flagged(jti: str = jti) -> bool:
                attempts = (await trace_of(hub, jti))["attempts"]
                return len(attempts) >= 2 and (await stream_view(hub, sid))["credentials_failing"]

            await until(flagged)
            t = await trace_of(hub, jti)
            assert t["state"] == "pending"
            assert {(a["outcome"], a["status"]) for a in t["attempts"]} == {("auth_retry", refusal.status)}
            receiver.default = Reply(202)  # the receiver fixed its credentials
            await until_state(hub, jti, "delivered")
            await until(lambda: _credentials_ok(hub, sid))
            assert {jti_of(r.body) for r in receiver.received[before:]} == {jti}  # the same SET each time


async def _credentials_ok(hub: RunningHub, sid: str) -> bool:
    return (await stream_view(hub, sid))["credentials_failing"] is False


async def test_a_redirect_is_not_followed_and_the_set_is_retried(tmp_path: Path) -> None:  # R-PUSH-7
    async with (
        push_receiver() as receiver,
        push_receiver() as elsewhere,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        receiver.then(*(Reply(s, headers={"Location": elsewhere.url}) for s in (301, 302, 307, 308)))
        await push_stream(hub, receiver.url, authorization="Bearer for-receiver-only")
        jti = await emit_one(hub)
        t = await until_state(hub, jti, "delivered")
        assert [a["status"] for a in t["attempts"]] == [301, 302, 307, 308, 202]
        assert all("redirect not followed" in (a["error"] or "") for a in t["attempts"][:4])
        assert elsewhere.received == []  # neither the SET nor the Authorization header went there
        assert {jti_of(b) for b in receiver.bodies()} == {jti}


async def test_back_off_statuses_server_errors_and_other_4xx_are_retried(tmp_path: Path) -> None:
    # R-PUSH-7, R-PUSH-8: 408/425/429/5xx mean "later"; a 400 with no registered err (a proxy,
    # a WAF) and other 4xx are retried rather than risk dropping a revocation.
    statuses = [408, 425, 429, 500, 502, 503, 504, 400, 404]
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        receiver.then(*(Reply(s) for s in statuses))
        await push_stream(hub, receiver.url)
        jti = await emit_one(hub)
        t = await until_state(hub, jti, "delivered")
        assert [(a["outcome"], a["status"]) for a in t["attempts"]] == [
            *(("retry", s) for s in statuses),
            ("delivered", 202),
        ]
        assert len(set(receiver.bodies())) == 1 and jti_of(receiver.bodies()[0]) == jti


async def test_retry_after_lengthens_the_wait_beyond_the_schedule(tmp_path: Path) -> None:  # R-PUSH-7
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule="0,0.05") as hub,
    ):
        receiver.then(Reply(503, headers={"Retry-After": "1"}), Reply(429, headers={"Retry-After": "0"}))
        await push_stream(hub, receiver.url)
        await emit_one(hub)
        first, second, third = await receiver.wait_for(3)
        assert 0.9 <= second.at - first.at < 2.0  # Retry-After: 1 honoured, not the 0.05 s schedule
        assert third.at - second.at < 0.5  # Retry-After: 0 does not stretch the schedule


# -- retries ------------------------------------------------------------------------------------------


async def test_after_a_503_the_same_signed_set_is_sent_again(
    tmp_path: Path, each_store: dict[str, Any]
) -> None:  # R-PUSH-8
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, **each_store, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        receiver.then(Reply(503), Reply(503))
        await push_stream(hub, receiver.url)
        jti = await emit_one(hub)
        received = await receiver.wait_for(3)
        assert len(set(receiver.bodies())) == 1  # byte for byte: same jti, same signature
        assert jti_of(received[0].body) == jti
        assert received[2].at - received[0].at < 1.0  # the short schedule, not the default one
        t = await until_state(hub, jti, "delivered")
        assert [a["status"] for a in t["attempts"]] == [503, 503, 202]


async def test_a_dropped_connection_is_retried(tmp_path: Path) -> None:  # R-PUSH-8
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        async with dropping_proxy(port_of(receiver.url), drops=2) as front:
            await push_stream(hub, front + "/events")
            jti = await emit_one(hub)
            (got,) = await receiver.wait_for(1)
            assert jti_of(got.body) == jti
            t = await until_state(hub, jti, "delivered")
        dropped, dropped_again, delivered = t["attempts"]
        for a in (dropped, dropped_again):
            assert a["outcome"] == "retry" and a["status"] is None and a["error"]
            # The connection was hung up on: the trace must not call that a timeout.
            assert a["error"] != "timeout" and "disconnected" in a["error"].lower(), a
        assert delivered["status"] == 202


async def test_a_receiver_that_is_down_is_retried_and_the_trace_says_so(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens here
    async with run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST) as hub:
        await push_stream(hub, f"http://127.0.0.1:{closed}/events")
        jti = await emit_one(hub)

        async def retried() -> bool:
            return len((await trace_of(hub, jti))["attempts"]) >= 3

        await until(retried)
        t = await trace_of(hub, jti)
        assert t["state"] == "pending"
        for a in t["attempts"]:
            assert a["outcome"] == "retry" and a["status"] is None
            assert "connect" in a["error"].lower() and a["error"] != "timeout", a


async def test_a_slow_receiver_hits_the_push_timeout_and_gets_the_same_set_again(tmp_path: Path) -> None:
    async with (
        push_receiver() as receiver,
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST, push_timeout=0.3) as hub,
    ):
        receiver.then(Reply(202, delay=1.0))  # answers, but only after a second
        await push_stream(hub, receiver.url)
        jti = await emit_one(hub)
        slow, fast = await receiver.wait_for(2)
        assert fast.at - slow.at < 0.9  # the hub gave up after push_timeout, not after the reply
        assert fast.body == slow.body and jti_of(fast.body) == jti
        t = await until_state(hub, jti, "delivered")
        timed_out, delivered = t["attempts"]
        assert timed_out["error"] == "timeout" and timed_out["status"] is None
        assert 250 <= timed_out["latency_ms"] < 900
        assert delivered["status"] == 202


async def test_an_answer_that_is_not_http_is_retried_and_traced(tmp_path: Path) -> None:  # R-PUSH-8
    ok = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with (
        raw_http_server([b"NONSENSE\r\n\r\n", b"HTTP/1.1 abc\r\n\r\n"], then=ok) as (base, bodies),
        run_hub(tmp_path, allow_private_endpoints=True, push_retry_schedule=FAST) as hub,
    ):
        await push_stream(hub, base + "/events", subject=BOB)
        jti = await emit_one(hub, BOB)
        t = await until_state(hub, jti, "delivered", timeout=5)
        garbled = t["attempts"][:2]
        assert all(a["outcome"] == "retry" and a["status"] is None and a["error"] for a in garbled), t
        assert t["attempts"][2]["status"] == 202
        assert len(set(bodies)) == 1 and jti_of(bodies[0].decode()) == jti
