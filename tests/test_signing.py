"""Signing SETs in a child process (issue #7: a second core where it pays).

The child is real (``python -m hub.keys.signing_child``); these tests check that what it signs
is what the loop would have signed, that concurrent callers each get their own SETs back,
that a rotation reaches it, and that killing it loses nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from hub.keys.ring import SigningKeyRing, eddsa_allowed
from hub.keys.signing import SetSigner, SigningProcess
from tests.support.hub import CAEP, run_hub

ALICE = {"format": "email", "email": "alice@example.com"}


def decode(token: str, ring: SigningKeyRing) -> jwt.Token:
    with eddsa_allowed():
        return jwt.decode(token, KeySet.import_key_set(ring.jwks()), algorithms=["RS256", "ES256", "EdDSA"])  # type: ignore[arg-type]


@pytest.fixture
async def signer(request: pytest.FixtureRequest) -> AsyncIterator[SetSigner]:
    alg = getattr(request, "param", "RS256")
    running = SetSigner(SigningKeyRing.generate(alg, 0.0), processes=1, restart_delay=0.0)
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.mark.parametrize("signer", ["RS256", "ES256", "EdDSA"], indirect=True)
async def test_the_child_signs_with_the_active_key_what_the_loop_would(signer: SetSigner) -> None:
    claims = [
        {"jti": f"j{i}", "iss": "https://hub", "events": {CAEP + "session-revoked": {}}} for i in range(5)
    ]
    signed = await signer.sign_many(claims)
    assert len(signed) == 5
    active = signer.ring.active
    for original, token in zip(claims, signed, strict=True):
        decoded = decode(token, signer.ring)
        assert decoded.header == {"alg": active.alg, "typ": "secevent+jwt", "kid": active.kid}  # R-SET-8
        assert decoded.claims == original


async def test_concurrent_callers_share_one_round_trip_and_get_their_own_sets(signer: SetSigner) -> None:
    (child,) = signer.processes
    batches = [[{"jti": f"caller{c}-{i}"} for i in range(c + 1)] for c in range(8)]
    results = await asyncio.gather(*(signer.sign_many(b) for b in batches))
    for batch, signed in zip(batches, results, strict=True):
        assert [decode(t, signer.ring).claims["jti"] for t in signed] == [c["jti"] for c in batch]
    assert next(child._batches) == 1  # the eight requests of one loop turn went as one frame


async def test_a_rotation_reaches_the_child(signer: SetSigner) -> None:
    first = decode((await signer.sign_many([{"jti": "a"}]))[0], signer.ring).header["kid"]
    signer.ring.rotate(now=10.0, overlap=3600.0)
    second = decode((await signer.sign_many([{"jti": "b"}]))[0], signer.ring).header["kid"]
    assert first != second == signer.ring.active.kid


async def test_a_killed_child_costs_no_set_and_is_restarted(signer: SetSigner) -> None:
    (child,) = signer.processes
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    # Whatever is asked while it dies is signed in the loop instead: every SET comes back.
    signed = await asyncio.gather(*(signer.sign_many([{"jti": f"k{i}"}]) for i in range(20)))
    assert [decode(s[0], signer.ring).claims["jti"] for s in signed] == [f"k{i}" for i in range(20)]
    for _ in range(200):
        (current,) = signer.processes
        if current is not child and current.alive:
            break
        await signer.sign_many([{"jti": "nudge"}])
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the signing process was not restarted")
    assert current.pid != child.pid
    before = next(current._batches)
    assert decode((await signer.sign_many([{"jti": "after"}]))[0], signer.ring).claims["jti"] == "after"
    assert next(current._batches) == before + 2  # signed by the new child, not in the loop


async def test_a_child_that_cannot_start_leaves_signing_in_the_loop() -> None:
    broken = SetSigner(
        SigningKeyRing.generate("ES256", 0.0),
        processes=1,
        process_factory=lambda: SigningProcess(["/nonexistent/python"]),
    )
    await broken.start()
    assert broken.processes == []
    token = (await broken.sign_many([{"jti": "x"}]))[0]
    assert decode(token, broken.ring).claims["jti"] == "x"
    await broken.close()


async def test_a_hub_with_a_signing_process_delivers_verifiable_sets(tmp_path: Path) -> None:
    async with run_hub(tmp_path / "data", signing_processes=1, signing_alg="RS256") as hub:
        assert hub.app is not None
        children = hub.app.state.hub.transmitter.signer.processes
        assert len(children) == 1 and children[0].alive
        streams = [await hub.create_stream(sub=f"agent-{i}") for i in range(3)]
        for i, stream in enumerate(streams):
            await hub.add_subject(stream["stream_id"], ALICE, sub=f"agent-{i}")
        result = await hub.emit("session-revoked", ALICE)
        assert len(result["sets"]) == 3
        for i, stream in enumerate(streams):
            (claims,) = await hub.poll_verified(stream, sub=f"agent-{i}")  # signature, kid, typ
            assert claims["txn"] == result["txn"]
        assert next(children[0]._batches) >= 1  # they went through the child


async def test_small_es256_batches_stay_in_the_loop_where_the_trip_costs_as_much_as_the_signature() -> None:
    signer = SetSigner(SigningKeyRing.generate("ES256", 0.0), processes=1)
    await signer.start()
    try:
        (child,) = signer.processes
        one = await signer.sign_many([{"jti": "alone"}])
        many = await signer.sign_many([{"jti": f"m{i}"} for i in range(4)])
        assert decode(one[0], signer.ring).claims["jti"] == "alone"
        assert [decode(t, signer.ring).claims["jti"] for t in many] == [f"m{i}" for i in range(4)]
        assert next(child._batches) == 1  # only the batch of four went to the child
    finally:
        await signer.close()
