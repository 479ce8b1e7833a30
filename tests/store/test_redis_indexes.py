"""The Redis store's shared indexes are supersets of the streams' slots, repaired by their
readers and by retention, and ingest is a saga that a crash at any step cannot make lose
or double a SET (``hub/store/redis_keys.py``, ``hub/store/redis_ingest.py``).

Each test runs on one Redis and on the three-node cluster. A crash is simulated by
running the saga's first steps alone, or by writing what a crash would leave behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.core.model import IngestReceipt, SubjectMode
from hub.store.redis import RedisStore
from hub.store.redis_keys import subject_member
from tests.store.conftest import SlotCheckedRedisStore
from tests.store.test_store_contract import jtis, make_stream, queued, subject

IDP = "https://idp.example.com"


@pytest.fixture(params=["redis", "redis-cluster"])
async def rs(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    url = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    store = SlotCheckedRedisStore(url)
    await store.open()
    assert store.cluster is (request.param == "redis-cluster")  # detected from a plain URL
    try:
        yield store
    finally:
        await store.close()


def receipt(jti: str = "up-1", at: float = 5000.0) -> IngestReceipt:
    return IngestReceipt(iss=IDP, jti=jti, received_at=at, expires_at=at + 100.0, txn=f"txn-{jti}")


# -- the ingest saga --------------------------------------------------------------------------
async def test_a_receipt_claimed_by_a_crashed_ingest_is_finished_by_the_duplicate(rs: RedisStore) -> None:
    for sid in ("s1", "s2"):
        await rs.create_stream(make_stream(sid))
    items = [queued("s1", "a"), queued("s2", "b")]
    await rs.claim_receipt(receipt(), rs.rows(items))  # ... and the process died here

    assert await rs.was_ingested(IDP, "up-1", now=5001.0) is False  # so the sender's retry gets in
    assert await rs.streams_with_pending() == []

    # The retry signs new SETs (new jtis): the stored ones are queued instead, once.
    retried = [queued("s1", "a-retry"), queued("s2", "b-retry")]
    assert await rs.ingest(receipt(at=5010.0), retried) is False
    assert (await jtis(rs, "s1"), await jtis(rs, "s2")) == (["a"], ["b"])
    assert await rs.was_ingested(IDP, "up-1", now=5011.0) is True
    assert await rs.ingest(receipt(at=5020.0), retried) is False
    assert (await jtis(rs, "s1"), await jtis(rs, "s2")) == (["a"], ["b"])


async def test_an_ingest_replayed_after_a_partial_fan_out_neither_loses_nor_doubles(rs: RedisStore) -> None:
    for sid in ("s1", "s2", "s3"):
        await rs.create_stream(make_stream(sid))
    rows = rs.rows([queued("s1", "a"), queued("s2", "b"), queued("s3", "c")])
    await rs.claim_receipt(receipt(), rows)
    await rs.enqueue_rows(rows[:2])  # s1 and s2 queued, then the crash
    await rs.complete("s1", ["a"], at=5005.0)  # and s1's receiver already took its SET

    assert await rs.ingest(receipt(at=5010.0), [queued("s1", "x")]) is False

    assert [await jtis(rs, sid) for sid in ("s1", "s2", "s3")] == [[], ["b"], ["c"]]
    assert [t.stream_id for t in await rs.trace("a")] == ["s1"]  # finished, not queued again
    assert sorted(await rs.streams_with_pending()) == ["s2", "s3"]


async def test_forgetting_receipts_keeps_one_claimed_again_later(rs: RedisStore) -> None:
    await rs.ingest(receipt(at=1000.0), [])
    await rs.ingest(receipt(at=1200.0), [])  # the first expired at 1100: claimed anew

    assert await rs.forget_ingested(before=1150.0) == 0
    assert await rs.was_ingested(IDP, "up-1", now=1250.0) is True
    assert await rs.forget_ingested(before=1400.0) == 1


# -- indexes are supersets that readers verify ------------------------------------------------
async def test_pending_streams_drops_an_emptied_queue_and_retention_restores_a_lost_entry(
    rs: RedisStore,
) -> None:
    await rs.create_stream(make_stream("s1"))
    await rs.create_stream(make_stream("s2"))
    await rs.enqueue([queued("s1", "j1"), queued("s2", "j1")])
    await rs.complete("s1", ["j1"], at=3000.0)

    assert await rs.client.sismember(rs.keys.pending_streams, "s1")  # left for the reader ...
    assert await rs.streams_with_pending() == ["s2"]  # ... which verifies and drops it
    assert not await rs.client.sismember(rs.keys.pending_streams, "s1")

    await rs.client.srem(rs.keys.pending_streams, "s2")  # as if a crash had lost it
    assert await rs.streams_with_pending() == []
    await rs.delete_finished(before=0.0)
    assert await rs.streams_with_pending() == ["s2"]


async def test_a_registry_entry_without_its_stream_is_skipped_then_cleaned_by_retention(
    rs: RedisStore,
) -> None:
    await rs.create_stream(make_stream("s1"))
    # What a crash between the index write and the record write leaves behind:
    await rs.client.zadd(rs.keys.streams, {"ghost": 900.0, "young": 5000.0})
    await rs.client.zadd(rs.keys.owner("alice"), {"ghost": 900.0})

    assert [s.stream_id for s in await rs.list_streams()] == ["s1"]
    assert [s.stream_id for s in await rs.list_streams("alice")] == ["s1"]

    await rs.delete_finished(before=2000.0)
    # Older than the cut-off: gone. Newer: it may be a create in flight, so it stays.
    assert await rs.client.zrange(rs.keys.streams, 0, -1) == ["s1", "young"]


async def test_a_stream_saved_out_of_all_subjects_is_not_listed_even_if_the_entry_dangles(
    rs: RedisStore,
) -> None:
    await rs.create_stream(make_stream("s1", subject_mode=SubjectMode.ALL))
    await rs.create_stream(make_stream("s2", subject_mode=SubjectMode.ALL))
    await rs.save_stream(make_stream("s1", subject_mode=SubjectMode.NONE))
    await rs.client.zadd(rs.keys.all_subjects, {"s1": 1000.0})  # dangling, as after a crash

    assert await rs.streams_with_all_subjects() == ["s2"]
    await rs.save_stream(make_stream("s1", subject_mode=SubjectMode.ALL))
    assert await rs.streams_with_all_subjects() == ["s1", "s2"]


async def test_a_replaced_subjects_old_index_entry_is_gone_and_a_stale_one_never_matches(
    rs: RedisStore,
) -> None:
    await rs.create_stream(make_stream("s1"))
    entry = subject("s1", "ann@example.com")
    await rs.put_subject(entry, ["email:ann@example.com", "tenant:old"])
    await rs.put_subject(entry, ["email:ann@example.com", "tenant:new"])
    stale = subject_member("s1", entry.key)  # a write that crashed before its record
    await rs.client.sadd(rs.keys.subject_index("tenant:stale"), stale)

    assert await rs.client.smembers(rs.keys.subject_index("tenant:old")) == set()
    assert len(await rs.client.smembers(rs.keys.subject_index("email:ann@example.com"))) == 1
    assert [e.key for e in await rs.find_subjects(["tenant:new", "email:ann@example.com"])] == [entry.key]
    assert await rs.find_subjects(["tenant:stale", "tenant:old"]) == []


async def test_sets_for_a_deleted_stream_leave_no_index_entry_and_dangling_trace_entries_are_skipped(
    rs: RedisStore,
) -> None:
    await rs.create_stream(make_stream("s1"))
    await rs.enqueue([queued("s1", "j1"), queued("gone", "j1")])

    assert await rs.client.zrange(rs.keys.trace_jti("j1"), 0, -1) == ["s1"]
    assert await rs.client.smembers(rs.keys.pending_streams) == {"s1"}

    await rs.client.zadd(rs.keys.trace_jti("j1"), {"crashed": 1.0})
    await rs.client.zadd(rs.keys.trace_txn("txn-j1"), {'["crashed","j1"]': 1.0})
    assert [t.stream_id for t in await rs.trace("j1")] == ["s1"]
    assert [t.stream_id for t in await rs.trace("txn-j1")] == ["s1"]


async def test_retention_trims_each_stream_in_batches_and_cleans_the_trace_index(rs: RedisStore) -> None:
    await rs.create_stream(make_stream("big"))
    await rs.create_stream(make_stream("small"))
    many = [queued("big", f"j{n}") for n in range(520)]  # more than one batch (500)
    await rs.enqueue([*many, queued("small", "j0"), queued("small", "keep")])
    await rs.complete("big", [i.jti for i in many], at=1000.0)
    await rs.complete("small", ["j0"], at=1000.0)

    assert await rs.delete_finished(before=2000.0) == 521

    assert await rs.trace("j0") == []
    assert await rs.client.exists(rs.keys.trace_jti("j0"), rs.keys.trace_jti("j519")) == 0
    assert [t.jti for t in await rs.trace("keep")] == ["keep"]
    assert await rs.client.zcard(rs.keys.sets("big")) == 0
