"""The Store contract for remediation receipts (issue #14): what a receiver did with a SET.

Every backend runs these (the ``store`` fixture, conftest.py). Receipts live with their SET's
delivery trace: only a SET the stream holds takes them, and they go when it goes.
"""

from __future__ import annotations

from hub.core.model import RemediationReceipt
from hub.store import Store
from tests.store.test_store_contract import queued
from tests.store.test_store_delivery_contract import only_trace, with_stream


def receipt(
    stream_id: str, jti: str, action: str = "token_dropped", count: int = 1, at: float = 3000.0
) -> RemediationReceipt:
    return RemediationReceipt(stream_id, jti, action, count, at, received_at=at + 0.5)


async def test_receipts_appear_in_the_trace_of_their_set_in_arrival_order(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"))
    await store.complete("s1", ["j1"], at=2500.0)
    first = receipt("s1", "j1", "token_dropped", count=2)
    second = receipt("s1", "j1", "request_refused", at=3100.0)

    assert await store.record_receipts("s1", [first]) == 1
    assert await store.record_receipts("s1", [second]) == 1

    assert (await only_trace(store, "j1")).receipts == (first, second)
    assert (await only_trace(store, "j2")).receipts == ()  # delivered, no receipt
    by_txn = {t.jti: t.receipts for t in await store.trace("txn-j1")}
    assert by_txn == {"j1": (first, second)}


async def test_a_pending_set_takes_receipts_too(store: Store) -> None:
    # A push receiver may act on a SET before the hub has recorded its 202.
    await with_stream(store, "s1", queued("s1", "j1"))

    assert await store.record_receipts("s1", [receipt("s1", "j1", "policy_denied")]) == 1

    assert [r.action for r in (await only_trace(store, "j1")).receipts] == ["policy_denied"]


async def test_receipts_for_sets_the_stream_never_held_are_skipped(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"))
    await with_stream(store, "s2", queued("s2", "j2"))

    kept = await store.record_receipts(
        "s1", [receipt("s1", "j2"), receipt("s1", "unknown"), receipt("s1", "j1", "ignored")]
    )

    assert kept == 1
    assert (await only_trace(store, "j2")).receipts == ()
    assert [r.action for r in (await only_trace(store, "j1")).receipts] == ["ignored"]
    assert await store.record_receipts("gone", [receipt("gone", "j1")]) == 0
    assert await store.record_receipts("s1", []) == 0


async def test_receipts_go_with_their_set_at_retention_and_with_a_deleted_stream(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"))
    await with_stream(store, "s2", queued("s2", "k1"))
    await store.complete("s1", ["j1"], at=1000.0)
    await store.record_receipts("s1", [receipt("s1", "j1"), receipt("s1", "j2")])
    await store.record_receipts("s2", [receipt("s2", "k1")])

    assert await store.delete_finished(before=2000.0) == 1
    await store.delete_stream("s2")

    # The same jtis queued again start with no receipts: nothing outlived its SET.
    await store.enqueue([queued("s1", "j1")])
    await with_stream(store, "s2", queued("s2", "k1"))
    assert (await only_trace(store, "j1")).receipts == ()
    assert (await only_trace(store, "k1")).receipts == ()
    assert len((await only_trace(store, "j2")).receipts) == 1
