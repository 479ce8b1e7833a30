"""Every script the Redis store runs declares its keys, all in one slot: the guard against a
layout change that would break Redis Cluster, without needing a cluster.

``SlotCheckedRedisStore`` (conftest.py) checks the keys of every script call of the whole
contract suite on both Redis backends; this test makes sure that check sees every script
the store has, by driving one store through all of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.crc import key_slot

from hub.core.health import DeliveryHealth
from hub.core.issuers import TrustedIssuer
from hub.core.model import AuditRecord, DeliveryState, IngestReceipt, RemediationReceipt, SubjectMode
from hub.store import redis_queue_scripts, redis_scripts
from hub.store.redis_keys import RedisKeys
from tests.store.conftest import SlotCheckedRedisStore
from tests.store.test_store_contract import make_stream, queued, subject
from tests.store.test_store_delivery_contract import attempt, failure
from tests.store.test_store_upstreams_contract import make_upstream

SCRIPTS = {
    name: source
    for module in (redis_scripts, redis_queue_scripts)
    for name, source in vars(module).items()
    if name.isupper() and not name.startswith("_") and isinstance(source, str) and "redis.call" in source
}


@pytest.fixture
async def checked(redis_url: str) -> AsyncIterator[SlotCheckedRedisStore]:
    store = SlotCheckedRedisStore(redis_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def test_the_hash_tags_put_a_streams_keys_and_a_receipt_each_in_one_slot() -> None:
    keys = RedisKeys()
    per_stream = [
        keys.stream("s1"),
        keys.stream_seq("s1"),
        keys.queue("s1"),
        keys.finished("s1"),
        keys.set("s1", "j}{1"),  # braces in a jti cannot move a SET out of its stream's slot
        keys.attempts("s1", "j1"),
    ]
    assert {key_slot(k.encode()) for k in per_stream} == {key_slot(b"{s:s1}")}
    assert key_slot(keys.stream("s2").encode()) != key_slot(keys.stream("s1").encode())
    assert key_slot(keys.receipt('["iss","j1"]').encode()) != key_slot(keys.receipts.encode())


async def test_every_script_runs_with_its_keys_in_one_slot(checked: SlotCheckedRedisStore) -> None:
    s = checked
    await s.create_stream(make_stream("s1"))
    await s.save_stream(make_stream("s1", description="changed"))
    await s.save_stream(make_stream("s1", subject_mode=SubjectMode.ALL))
    await s.put_subject(subject("s1", "ann@example.com"), ["email:ann@example.com"])
    await s.remove_subject("s1", "email:ann@example.com")
    await s.enqueue([queued("s1", "j1"), queued("s1", "j2"), queued("s1", "c1", control=True)])
    await s.pending("s1", 10)
    await s.queue_stats("s1")
    await s.record_attempt(failure("s1", "j1", 2.0), next_attempt_at=3.0, last_error="HTTP 503")
    await s.complete("s1", ["j1"], at=3.0, attempts=[attempt("s1", "j1", 3.0)])
    await s.reschedule_pending("s1", next_attempt_at=4.0)
    await s.purge_pending("s1", at=5.0)
    await s.save_health("s1", DeliveryHealth())
    await s.record_set_errors("s1", {"j1": ("jwtAud", "wrong aud")}, at=5.0)
    await s.record_receipts("s1", [RemediationReceipt("s1", "j1", "token_dropped", 1, 5.0, 5.0)])
    await s.append_audit(AuditRecord(at=5.0, kind="stream_updated", stream_id="s1", detail={}))
    await s.delete_finished(before=10.0)
    await s.acquire_lease("job:x", "me", now=1.0, ttl=5.0)
    await s.release_lease("job:x", "me")
    await s.put_key_document("signing", "ring", expected=None)
    await s.put_issuer(
        TrustedIssuer(iss="https://idp.example", jwks_uri="https://idp.example/jwks", added_at=1.0)
    )
    await s.remove_issuer("https://idp.example")
    await s.add_upstream(make_upstream("u1"))
    await s.save_upstream_state("u1", make_upstream("u1").state)
    await s.remove_upstream("u1")
    receipt = IngestReceipt("https://idp.example", "up-1", 1.0, 2.0, "txn")
    await s.ingest(receipt, [queued("s1", "j9")])
    await s.forget_ingested(before=3.0)
    await s.complete("s1", ["j9"], at=6.0, state=DeliveryState.DELIVERED)
    await s.delete_stream("s1")

    assert len(SCRIPTS) >= 20
    assert {name for name, source in SCRIPTS.items() if source not in s.scripts_run} == set()
