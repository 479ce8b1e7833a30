"""Ingest rate: verified upstream SETs per second into the durable store of a real hub.

    .venv/bin/python -m tests.bench.ingest_rate [--quick] [--runs 3] [--sets 3000]
        [--algs RS256,ES256] [--streams 0,1] [--clients 2] [--concurrency 8] [--hub-alg RS256]
        [--out FILE]

For each upstream algorithm and number of matching downstream streams: a fresh
``ssf-hub serve`` (on CPU 1 when ``taskset`` exists) trusts one issuer with pinned keys
(``ssf-hub issuers add --jwks-file``); ``--clients`` processes (on CPU 0) POST pre-signed SETs,
each with its own ``jti``, to ``/ssf/ingest`` with ``--concurrency`` requests in flight, all
starting at one instant. The rate is SETs answered 202 per second from that instant to the
last 202; each 202 means the SET was verified (signature, claims), de-duplicated and, with
its re-issued SETs (``--streams`` of them, signed with ``--hub-alg``), committed to SQLite.
The run then checks the streams hold exactly the SETs expected. Prints min / median / max
and the hub's CPU time per SET (all its threads; less sensitive to a busy machine than the
rate), and writes JSON to ``tests/bench/results/ingest_rate.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.bench import harness as h
from tests.bench.profiles import summarise

ALICE = {"format": "email", "email": "alice@example.com"}
ISSUER = "https://idp.bench.example"
START_DELAY = 1.5  # seconds for every client to connect before the common start


def presign(alg: str, aud: str, count: int) -> tuple[dict[str, Any], list[str]]:
    """An issuer key's public JWK Set and ``count`` SETs signed with it, each its own jti."""
    from tests.support.idp import new_key, sign

    key = new_key(alg, kid=f"bench-{alg.lower()}")
    now = int(time.time())
    tokens = [
        sign(
            {
                "iss": ISSUER,
                "jti": uuid.uuid4().hex,
                "iat": now,
                "aud": aud,
                "sub_id": ALICE,
                "events": {h.SESSION_REVOKED: {"event_timestamp": now}},
            },
            key,
            alg=alg,
        )
        for _ in range(count)
    ]
    return {"keys": [key.as_dict(private=False)]}, tokens


def one_run(
    alg: str,
    streams: int,
    sets: int,
    clients: int,
    concurrency: int,
    hub_alg: str,
    profile: Path | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, h.Hub(tmp, alg=hub_alg) as hub:
        jwks, tokens = presign(alg, hub.base, sets + 1)
        jwks_file = Path(tmp) / "idp-jwks.json"
        jwks_file.write_text(json.dumps(jwks))
        subprocess.run(
            [h.SSF_HUB, "issuers", "add", "--data-dir", tmp, "--iss", ISSUER, "--jwks-file", str(jwks_file),
             "--alg", alg],
            check=True, capture_output=True, cwd=tmp,
        )  # fmt: skip
        ids = [s["stream_id"] for s in hub.create_streams(streams, subjects=[[ALICE]] * streams)]
        headers = {**hub.auth("idp", "ssf.ingest"), "Content-Type": "application/secevent+jwt"}
        url = hub.base + "/ssf/ingest"
        warm = httpx.post(url, content=tokens.pop(), headers=headers, timeout=30)
        assert warm.status_code == 202, warm.text

        start_at = time.time() + START_DELAY
        cpu_before = h.cpu_seconds(hub.pid)
        share = -(-len(tokens) // clients)
        workers = [
            h.Worker(
                "ingest_rate",
                {
                    "url": url,
                    "headers": headers,
                    "tokens": tokens[i * share : (i + 1) * share],
                    "concurrency": concurrency,
                    "start_at": start_at,
                },
                tmp,
            )
            for i in range(clients)
        ]
        with hub.profiled(profile):
            reports = [w.report() for w in workers]
        hub_cpu = h.cpu_seconds(hub.pid) - cpu_before
        accepted = sum(r["accepted"] for r in reports)
        refused = sum(r["refused"] for r in reports)
        elapsed = max(r["finished"] for r in reports) - start_at
        if refused or accepted != len(tokens):
            raise RuntimeError(f"{refused} SETs refused, {accepted} of {len(tokens)} accepted")
        queued = _queued(hub, ids)
        if queued != (len(tokens) + 1) * streams:
            raise RuntimeError(f"the streams hold {queued} SETs, expected {(len(tokens) + 1) * streams}")
        return {
            "alg": alg,
            "streams": streams,
            "sets": accepted,
            "seconds": elapsed,
            "sets_per_s": accepted / elapsed,
            "hub_cpu_us_per_set": hub_cpu / accepted * 1e6,
        }


def _queued(hub: h.Hub, ids: list[str]) -> int:
    r = httpx.get(hub.base + "/ssf/admin/streams", headers=hub.auth("op", "ssf.admin"), timeout=60)
    r.raise_for_status()
    return sum(s["queued"] for s in r.json() if s["stream_id"] in ids)


# -- the client worker (python -m tests.bench.ingest_rate PLAN REPORT) ----------------------------------
async def post_all(plan: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    tokens: list[str] = plan["tokens"]
    concurrency, headers, url = plan["concurrency"], plan["headers"], plan["url"]
    accepted = refused = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        health = url.rsplit("/ssf/", 1)[0] + "/healthz"

        async def connect() -> None:
            async with session.get(health) as r:
                await r.read()

        await asyncio.gather(*(connect() for _ in range(concurrency)))  # connect before the start
        await asyncio.sleep(max(0.0, plan["start_at"] - time.time()))
        queue = iter(tokens)

        async def lane() -> None:
            nonlocal accepted, refused
            for token in queue:
                async with session.post(url, data=token, headers=headers) as r:
                    await r.read()
                    if r.status == 202:
                        accepted += 1
                    else:
                        refused += 1

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return {"accepted": accepted, "refused": refused, "finished": time.time()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run, 300 SETs: a smoke run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sets", type=int, default=3000)
    parser.add_argument("--algs", default="RS256,ES256")
    parser.add_argument("--streams", default="0,1")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight per client")
    parser.add_argument("--hub-alg", default="RS256", help="the hub's own SET signing algorithm")
    parser.add_argument("--profile", action="store_true", help="py-spy the hub in one extra, uncounted run")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    runs, sets = (1, 300) if args.quick else (args.runs, args.sets)
    started = h.machine()
    rows = []
    for alg in args.algs.split(","):
        for streams in (int(s) for s in args.streams.split(",")):
            if args.profile:  # sampling slows the hub, so this run's figures are not counted
                path = h.RESULTS / f"profiles/ingest_rate-{alg}-{streams}.txt"
                one_run(alg, streams, sets, args.clients, args.concurrency, args.hub_alg, path)
                print(summarise(path, title=f"ingest, {alg}, {streams} streams: hub profile"))
            samples = [
                one_run(alg, streams, sets, args.clients, args.concurrency, args.hub_alg) for _ in range(runs)
            ]
            rates = [s["sets_per_s"] for s in samples]
            rows.append(
                {"alg": alg, "streams": streams, "sets": samples[0]["sets"], "runs": runs, "min": min(rates),
                 "median": statistics.median(rates), "max": max(rates), "samples": samples}
            )  # fmt: skip
    print(
        f"\ningest: verified SETs/s into the durable store ({runs} runs; {args.clients} clients x "
        f"{args.concurrency} in flight; re-issued SETs signed {args.hub_alg})"
    )
    print(
        h.table(
            ("upstream alg", "streams", "SETs", "SETs/s min/med/max", "hub CPU µs/SET (median)"),
            [
                (
                    r["alg"],
                    r["streams"],
                    r["sets"],
                    h.msr([s["sets_per_s"] for s in r["samples"]]),
                    statistics.median(s["hub_cpu_us_per_set"] for s in r["samples"]),
                )
                for r in rows
            ],
        )
    )
    settings = {k: getattr(args, k) for k in ("clients", "concurrency", "hub_alg")}
    h.write_result("ingest_rate", {"started": started, "settings": settings, "rows": rows}, args.out)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1].endswith(".json"):
        plan = json.loads(Path(sys.argv[1]).read_text())
        Path(sys.argv[2]).write_text(json.dumps(h.run_async(post_all(plan))))
    else:
        main()
