"""Benchmark worker: hot-loop floors in one process (run it pinned to one core).

    python -m tests.bench.micro PLAN.json REPORT.json

Plan: ``seconds`` per cell, ``algs``, ``sqlite_dir`` (where the SQLite test file goes; on the
same disk as the hub's data). Report: a list of ``{"group", "what", "per_s", "per_wall_s"}`` cells; ``per_s``
is per CPU-second of this process for the JWS cells (robust when other processes share the
core) and per wall-clock second for SQLite (commits wait on the disk):

* JWS compact sign / verify of a 400-byte SET, with joserfc (what the hub uses, with imported
  key objects) and with raw ``cryptography`` (by hand: JSON, base64url, the signature, and for
  ES256 the DER <-> r||s conversion).
* SQLite rows (and commits) per second, WAL, ~750-byte rows: one row per transaction at ``FULL`` (fsync on
  every commit, the hub's default) and at ``NORMAL``, and 100 rows per transaction at ``FULL``.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import sqlite3
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey

CLAIMS = {
    "iss": "https://hub.bench.example",
    "aud": "https://receiver.bench.example",
    "iat": 1_800_000_000,
    "jti": "5b2a0c3f9d8e4b7a8c6d1e2f3a4b5c6d",
    "txn": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "sub_id": {"format": "email", "email": "alice@example.com"},
    "events": {
        "https://schemas.openid.net/secevent/caep/event-type/session-revoked": {
            "event_timestamp": 1_800_000_000,
            "initiating_entity": "policy",
            "reason_admin": {"en": "Landspeed Policy Violation: C076E82F"},
        }
    },
}


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def unb64(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def rate(fn: Callable[[], object], seconds: float) -> dict[str, float]:
    """Calls per CPU-second of this process (what one core allows, even when other processes
    take turns on it) and per wall-clock second."""
    fn()
    n, start, cpu = 0, time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for _ in range(20):
            fn()
        n += 20
        now = time.perf_counter()
        if now >= deadline:
            return {"per_s": n / (time.process_time() - cpu), "per_wall_s": n / (now - start)}


def raw_pair(alg: str) -> tuple[Callable[[], bytes], Callable[[bytes], object]]:
    """Compact JWS sign and verify by hand with ``cryptography``."""
    header = {"alg": alg, "typ": "secevent+jwt", "kid": "bench"}
    if alg == "RS256":
        rkey = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rpub = rkey.public_key()

        def sig(data: bytes) -> bytes:
            return rkey.sign(data, padding.PKCS1v15(), hashes.SHA256())

        def check(s: bytes, data: bytes) -> None:
            rpub.verify(s, data, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        ekey = ec.generate_private_key(ec.SECP256R1())
        epub = ekey.public_key()

        def sig(data: bytes) -> bytes:
            r, s = decode_dss_signature(ekey.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        def check(s: bytes, data: bytes) -> None:
            der = encode_dss_signature(int.from_bytes(s[:32], "big"), int.from_bytes(s[32:], "big"))
            epub.verify(der, data, ec.ECDSA(hashes.SHA256()))
    else:
        okey = ed25519.Ed25519PrivateKey.generate()
        opub = okey.public_key()

        def sig(data: bytes) -> bytes:
            return okey.sign(data)

        def check(s: bytes, data: bytes) -> None:
            opub.verify(s, data)

    def sign() -> bytes:
        signing_input = b64(json.dumps(header).encode()) + b"." + b64(json.dumps(CLAIMS).encode())
        return signing_input + b"." + b64(sig(signing_input))

    def verify(token: bytes) -> object:
        signing_input, _, signature = token.rpartition(b".")
        head, _, payload = signing_input.partition(b".")
        if json.loads(unb64(head))["alg"] != alg:
            raise ValueError("alg")
        check(unb64(signature), signing_input)
        return json.loads(unb64(payload))

    return sign, verify


def joserfc_pair(alg: str) -> tuple[Callable[[], str], Callable[[str], object]]:
    """The hub's way: ``jwt.encode`` / ``jwt.decode`` with imported key objects."""
    params: Any = {"alg": alg}
    if alg == "RS256":
        key: Any = RSAKey.generate_key(2048, parameters=params)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", parameters=params)
    else:
        key = OKPKey.generate_key("Ed25519", parameters=params)
    header = {"alg": alg, "typ": "secevent+jwt", "kid": "bench"}
    return (
        lambda: jwt.encode(header, dict(CLAIMS), key, algorithms=[alg]),
        lambda token: jwt.decode(token, key, algorithms=[alg]),
    )


def jws_cells(algs: list[str], seconds: float) -> list[dict[str, Any]]:
    cells = []
    for alg in algs:
        pairs: list[tuple[str, tuple[Callable[[], Any], Callable[[Any], object]]]] = [
            ("joserfc", joserfc_pair(alg)),
            ("cryptography", raw_pair(alg)),
        ]
        for lib, (sign, verify) in pairs:
            token = sign()
            verify_once = functools.partial(verify, token)
            cells.append({"group": "jws", "what": f"JWS {alg} sign, {lib}", **rate(sign, seconds)})
            cells.append({"group": "jws", "what": f"JWS {alg} verify, {lib}", **rate(verify_once, seconds)})
    return cells


def sqlite_cells(directory: str, seconds: float) -> list[dict[str, Any]]:
    row = "x" * 750  # a queued SET is about this size
    cells = []
    for what, sync, batch in (
        ("SQLite rows/s, 1 per commit, FULL", "FULL", 1),
        ("SQLite rows/s, 1 per commit, NORMAL", "NORMAL", 1),
        ("SQLite rows/s, 100 per commit, FULL", "FULL", 100),
    ):
        path = Path(directory) / f"micro-{os.getpid()}-{sync}-{batch}.sqlite3"
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute("CREATE TABLE q (seq INTEGER PRIMARY KEY, jti TEXT UNIQUE, body TEXT)")

        def commit(conn: sqlite3.Connection = conn, batch: int = batch) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO q (jti, body) VALUES (?, ?)", ((uuid.uuid4().hex, row) for _ in range(batch))
            )
            conn.execute("COMMIT")

        txns = rate(commit, seconds)
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        # Commits wait on the disk: wall-clock is the figure here, CPU time would flatter it.
        rows = txns["per_wall_s"] * batch
        cells.append(
            {
                "group": "sqlite",
                "what": what,
                "per_s": rows,
                "per_wall_s": rows,
                "commits_per_s": rows / batch,
            }
        )
    return cells


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    warnings.filterwarnings("ignore", category=SecurityWarning)  # joserfc: "EdDSA is deprecated"
    cells = jws_cells(plan["algs"], plan["seconds"])
    cells += sqlite_cells(plan["sqlite_dir"], plan["seconds"])
    Path(sys.argv[2]).write_text(json.dumps({"cells": cells}))


if __name__ == "__main__":
    main()
