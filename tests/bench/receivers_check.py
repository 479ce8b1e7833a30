"""What a gateway pays per request to ask "was this caller revoked?": ``ContinuousAccess.check``
on in-memory state and on Redis state (``receivers.redis_state.RedisState``), local cache hit
and miss.

    .venv/bin/python -m tests.bench.receivers_check [--checks 20000] [--revoked 10000] [--quick]
        [--out tests/bench/results/receivers_check.json]

A real ``redis-server`` (started here, no persistence, on loopback) holds ``--revoked``
revocations of users (``session-revoked``, by email) and a policy denial for one user in a
hundred. Callers present one access token whose claims name a user, a session and a tenant
(``principals_from_claims``: a complex subject, three identifiers to look up). Rows:

- memory: the default in-process state (the baseline);
- redis, cache hit: a replica whose change channel is subscribed, after one check per caller
  warmed its cache (1,000 distinct callers, cycled; ``cache_ttl`` raised so that entries outlive
  the run — the hit path is what is measured);
- redis, cache miss: a replica without the change listener, so every check reads Redis (one
  pipelined round trip for the revocations, one for the denials).

Each row checks callers that are not revoked (the common case) and callers that are (401);
the figure is the wall-clock time of one ``await access.check(caller)``, p50 / p99 / mean in
microseconds. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from receivers import ContinuousAccess, RedisState, TokenKind, principals_from_claims
from receivers.caller import Caller, Credential
from receivers.events import RISK_LEVEL_CHANGE
from receivers.policy import Decision, DecisionRecord
from receivers.revocations import Revocation
from tests.bench.harness import percentile, run_async, table, write_result
from tests.support.redis import start_redis

NOW = time.time()
CALLERS = 1000


def email(n: int) -> str:
    return f"user{n}@example.com"


def caller(n: int) -> Caller:
    claims = {
        "iss": "https://idp.example.com",
        "sub": f"u-{n}",
        "email": email(n),
        "sid": f"s-{n}",
        "tid": "t-1",
    }
    subjects = tuple(principals_from_claims(claims))
    return Caller((Credential(TokenKind.ACCESS, subjects, NOW - 3600, f"sha256:{n:016x}"),))


async def populate(access: ContinuousAccess, revoked: int) -> None:
    for n in range(revoked):
        subject = {"format": "email", "email": email(n)}
        await access.revocations.revoke(
            Revocation(subject, NOW - 60, "session-revoked", f"j{n}", "https://hub")
        )
    for n in range(0, revoked, 100):
        subject = {"format": "email", "email": email(revoked + n)}
        deny = DecisionRecord(
            subject, Decision.deny("risk level is HIGH"), RISK_LEVEL_CHANGE, f"p{n}", "hub", None, NOW
        )
        await access.policy_state.record(deny)


async def timed(access: ContinuousAccess, callers: list[Caller], checks: int, status: int) -> dict[str, Any]:
    samples: list[float] = []
    for i in range(checks):
        who = callers[i % len(callers)]
        began = time.perf_counter()
        verdict = await access.check(who)
        samples.append((time.perf_counter() - began) * 1e6)
        assert verdict.status == status, (verdict, status)
    return {
        "checks": checks,
        "p50_us": percentile(samples, 50),
        "p99_us": percentile(samples, 99),
        "mean_us": statistics.fmean(samples),
        "checks_per_s": checks / (sum(samples) / 1e6),
    }


async def measure(checks: int, revoked: int, redis_url: str) -> list[dict[str, Any]]:
    clean = [caller(revoked * 2 + n) for n in range(CALLERS)]  # never revoked, never denied
    hit = [caller(n) for n in range(min(CALLERS, revoked))]  # revoked: 401
    rows: list[dict[str, Any]] = []

    memory = ContinuousAccess()
    await populate(memory, revoked)
    rows.append({"state": "memory", "caller": "not revoked", **await timed(memory, clean, checks, 200)})
    rows.append({"state": "memory", "caller": "revoked", **await timed(memory, hit, checks, 401)})

    async with RedisState(redis_url, cache_ttl=3600) as cached:  # entries must outlive a slow warm-up
        access = ContinuousAccess(revocations=cached.revocations, policy_store=cached.policy)
        await populate(access, revoked)
        assert cached.listening
        for _ in range(5):  # warm the local cache, until the populating writes' messages are all in
            before = cached.cache.misses
            for who in clean + hit:
                await access.check(who)
            if cached.cache.misses == before:
                break
        before = cached.cache.misses
        rows.append(
            {"state": "redis, cache hit", "caller": "not revoked", **await timed(access, clean, checks, 200)}
        )
        rows.append(
            {"state": "redis, cache hit", "caller": "revoked", **await timed(access, hit, checks, 401)}
        )
        assert cached.cache.misses == before, "a warmed check missed the cache"

    uncached = RedisState(redis_url)  # not started: no change listener, so no local cache
    try:
        access = ContinuousAccess(revocations=uncached.revocations, policy_store=uncached.policy)
        rows.append(
            {"state": "redis, cache miss", "caller": "not revoked", **await timed(access, clean, checks, 200)}
        )
        rows.append(
            {"state": "redis, cache miss", "caller": "revoked", **await timed(access, hit, checks, 401)}
        )
    finally:
        await uncached.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, default=20_000, help="timed checks per row")
    parser.add_argument("--revoked", type=int, default=10_000, help="revocations held in the state")
    parser.add_argument("--quick", action="store_true", help="2,000 checks, 1,000 revocations: a smoke run")
    parser.add_argument("--runs", type=int, default=1, help="accepted for tests.bench.all; one run")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.checks, args.revoked = 2000, 1000
    if shutil.which("taskset"):
        os.sched_setaffinity(0, {0})  # redis-server is left to the other core
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp, start_redis(Path(tmp)) as server:
        rows = run_async(measure(args.checks, args.revoked, server.url))
    print(f"ContinuousAccess.check, {args.revoked:,} revocations held, {args.checks:,} checks per row (µs)")
    headers = ["state", "caller", "p50 µs", "p99 µs", "mean µs", "checks/s"]
    print(
        table(
            headers,
            [
                [r["state"], r["caller"], r["p50_us"], r["p99_us"], r["mean_us"], r["checks_per_s"]]
                for r in rows
            ],
        )
    )
    write_result("receivers_check", {"checks": args.checks, "revoked": args.revoked, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
