"""The Store contract for push delivery: finishing SETs, attempts, the trace, health, leases.

Every backend runs these (the ``store`` fixture, conftest.py). A finished SET leaves the
queue but stays in the trace until retention (``delete_finished``) forgets it.
"""

from __future__ import annotations

import dataclasses

from hub.core.health import DeliveryHealth
from hub.core.model import Attempt, DeliveryState, QueuedSet, QueueStats, SetTrace
from hub.store import Store
from tests.store.test_store_contract import jtis, make_stream, queued


def attempt(stream_id: str, jti: str, at: float, outcome: str = "delivered", **changes: object) -> Attempt:
    made = Attempt(stream_id=stream_id, jti=jti, at=at, outcome=outcome, status=200, latency_ms=12.5)
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def failure(stream_id: str, jti: str, at: float, error: str = "HTTP 503") -> Attempt:
    return attempt(stream_id, jti, at, "retry", status=503, error=error, latency_ms=40.0)


async def only_trace(store: Store, jti: str) -> SetTrace:
    found = await store.trace(jti)
    assert len(found) == 1, found
    return found[0]


async def pending_item(store: Store, stream_id: str, jti: str) -> QueuedSet:
    found = [item for item in await store.pending(stream_id, 100) if item.jti == jti]
    assert len(found) == 1, found
    return found[0]


async def with_stream(store: Store, stream_id: str, *items: QueuedSet) -> None:
    await store.create_stream(make_stream(stream_id))
    await store.enqueue(list(items))


# -- complete ---------------------------------------------------------------------------------
async def test_a_completed_set_leaves_the_queue_but_stays_in_the_trace(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"), queued("s1", "j3"))

    assert await store.complete("s1", ["j1"], at=3000.0) == 1
    assert await store.complete("s1", ["j3"], at=3100.0, state=DeliveryState.FAILED) == 1

    assert await jtis(store, "s1") == ["j2"]
    assert await store.count_pending("s1") == 1
    assert await store.trace("j1") == [
        SetTrace("s1", "j1", "txn-j1", queued("s1", "j1").event_type, DeliveryState.DELIVERED, 2000.0, 3000.0)
    ]
    assert (await only_trace(store, "j3")).state is DeliveryState.FAILED
    assert (await only_trace(store, "j3")).done_at == 3100.0
    waiting = await only_trace(store, "j2")
    assert (waiting.state, waiting.done_at, waiting.attempts) == (DeliveryState.PENDING, None, ())


async def test_complete_ignores_unknown_and_finished_jtis_and_counts_what_it_changed(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"))
    await store.complete("s1", ["j1"], at=3000.0)

    # j1 is finished already: a late poll ack or setErr must not rewrite how it ended.
    changed = await store.complete("s1", ["j1", "j2", "nope"], at=4000.0, state=DeliveryState.FAILED)

    assert changed == 1
    j1 = await only_trace(store, "j1")
    assert (j1.state, j1.done_at) == (DeliveryState.DELIVERED, 3000.0)
    assert (await only_trace(store, "j2")).state is DeliveryState.FAILED
    assert await store.complete("s1", ["j1", "j2"], at=5000.0) == 0
    assert await store.complete("unknown-stream", ["j1"], at=5000.0) == 0


async def test_complete_only_touches_the_named_stream(store: Store) -> None:
    await with_stream(store, "a", queued("a", "j1"))
    await with_stream(store, "b", queued("b", "j1"))

    assert await store.complete("a", ["j1"], at=3000.0) == 1

    assert await jtis(store, "b") == ["j1"]
    states = {t.stream_id: t.state for t in await store.trace("j1")}
    assert states == {"a": DeliveryState.DELIVERED, "b": DeliveryState.PENDING}


async def test_attempts_given_to_complete_appear_in_the_trace_in_order(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"), queued("s1", "j3"))
    await store.record_attempt(failure("s1", "j1", 2500.0), next_attempt_at=2600.0, last_error="HTTP 503")
    pushes = [attempt("s1", "j1", 2600.0), attempt("s1", "j2", 2601.0, latency_ms=3.25)]

    assert await store.complete("s1", ["j1", "j2"], at=2601.0, attempts=pushes) == 2

    assert (await only_trace(store, "j1")).attempts == (failure("s1", "j1", 2500.0), pushes[0])
    assert (await only_trace(store, "j2")).attempts == (pushes[1],)
    assert (await only_trace(store, "j3")).attempts == ()


async def test_a_permanent_failure_is_recorded_with_its_attempt(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"))
    refused = attempt("s1", "j1", 2500.0, "permanent", status=400, error="invalid_request: bad SET")

    await store.complete("s1", ["j1"], at=2500.0, state=DeliveryState.FAILED, attempts=[refused])

    trace = await only_trace(store, "j1")
    assert (trace.state, trace.done_at, trace.attempts) == (DeliveryState.FAILED, 2500.0, (refused,))
    assert await store.count_pending("s1") == 0


# -- record_attempt ---------------------------------------------------------------------------
async def test_record_attempt_counts_the_attempt_and_schedules_the_next(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"))
    first, second = failure("s1", "j1", 2100.0), failure("s1", "j1", 2160.0, error="timeout")

    await store.record_attempt(first, next_attempt_at=2160.0, last_error="HTTP 503")
    await store.record_attempt(second, next_attempt_at=2400.0, last_error="timeout")

    item = await pending_item(store, "s1", "j1")
    assert (item.attempts, item.next_attempt_at) == (2, 2400.0)
    assert await jtis(store, "s1") == ["j1", "j2"]  # a retried SET keeps its place
    trace = await only_trace(store, "j1")
    assert (trace.state, trace.last_error) == (DeliveryState.PENDING, "timeout")
    assert trace.attempts == (first, second)
    other = await pending_item(store, "s1", "j2")
    assert (other.attempts, other.next_attempt_at) == (0, 0.0)
    assert (await only_trace(store, "j2")).last_error is None


async def test_record_attempt_for_a_deleted_stream_is_a_no_op(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"))
    await store.delete_stream("s1")

    # The stream went away while the push was in flight: nothing to record, no error.
    await store.record_attempt(failure("s1", "j1", 2100.0), next_attempt_at=2160.0, last_error="HTTP 503")
    await store.complete("s1", ["j1"], at=2200.0, attempts=[attempt("s1", "j1", 2200.0)])

    assert await store.trace("j1") == []
    # Nothing was left behind either: the same ids queued again start with a clean history.
    await with_stream(store, "s1", queued("s1", "j1"))
    trace = await only_trace(store, "j1")
    assert (trace.attempts, trace.last_error) == ((), None)
    item = await pending_item(store, "s1", "j1")
    assert (item.attempts, item.next_attempt_at) == (0, 0.0)


# -- reschedule and purge ---------------------------------------------------------------------
async def test_reschedule_pending_moves_only_the_pending_sets_of_that_stream(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"), queued("s1", "j3"))
    await with_stream(store, "s2", queued("s2", "k1"))
    for sid, jti in (("s1", "j1"), ("s1", "j2"), ("s2", "k1")):
        await store.record_attempt(failure(sid, jti, 2100.0), next_attempt_at=9000.0, last_error="HTTP 503")
    await store.complete("s1", ["j3"], at=2200.0)

    assert await store.reschedule_pending("s1", next_attempt_at=0.0) == 2

    assert [(i.jti, i.next_attempt_at, i.attempts) for i in await store.pending("s1", 10)] == [
        ("j1", 0.0, 1),
        ("j2", 0.0, 1),
    ]
    assert (await pending_item(store, "s2", "k1")).next_attempt_at == 9000.0
    assert (await only_trace(store, "j3")).state is DeliveryState.DELIVERED
    assert await store.reschedule_pending("unknown", next_attempt_at=0.0) == 0


async def test_purge_pending_drops_the_queue_into_the_trace_and_can_keep_control_sets(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "e1"), queued("s1", "c1", control=True), queued("s1", "e2"))
    await with_stream(store, "s2", queued("s2", "x1"))
    await store.complete("s1", ["e1"], at=2500.0)

    assert await store.purge_pending("s1", at=3000.0, keep_control=True) == 1

    assert await jtis(store, "s1") == ["c1"]
    dropped = await only_trace(store, "e2")
    assert (dropped.state, dropped.done_at) == (DeliveryState.DROPPED, 3000.0)
    delivered = await only_trace(store, "e1")  # already finished: not dropped again
    assert (delivered.state, delivered.done_at) == (DeliveryState.DELIVERED, 2500.0)
    assert await jtis(store, "s2") == ["x1"]

    assert await store.purge_pending("s1", at=3100.0, keep_control=False) == 1

    assert await store.count_pending("s1") == 0
    control = await only_trace(store, "c1")
    assert (control.state, control.done_at) == (DeliveryState.DROPPED, 3100.0)
    assert await store.purge_pending("s1", at=3200.0, keep_control=False) == 0


# -- queue overview ---------------------------------------------------------------------------
async def test_streams_with_pending_lists_just_the_streams_with_queued_sets(store: Store) -> None:
    assert await store.streams_with_pending() == []
    await with_stream(store, "busy", queued("busy", "j1"), queued("busy", "j2"))
    await with_stream(store, "done", queued("done", "j1"))
    await with_stream(store, "empty")
    await with_stream(store, "control", queued("control", "c1", control=True))
    await with_stream(store, "gone", queued("gone", "j1"))

    await store.complete("done", ["j1"], at=3000.0)
    await store.delete_stream("gone")

    assert sorted(await store.streams_with_pending()) == ["busy", "control"]
    await store.purge_pending("control", at=3000.0, keep_control=False)
    assert await store.streams_with_pending() == ["busy"]


async def test_queue_stats_report_depth_and_the_oldest_pending_set(store: Store) -> None:
    items = [dataclasses.replace(queued("s1", f"j{n}"), queued_at=2000.0 + n) for n in range(4)]
    await with_stream(store, "s1", *items)
    await store.create_stream(make_stream("empty"))

    assert await store.queue_stats("s1") == QueueStats(depth=4, oldest_queued_at=2000.0)

    await store.complete("s1", ["j0", "j2"], at=3000.0)  # the oldest leaves the queue

    assert await store.queue_stats("s1") == QueueStats(depth=2, oldest_queued_at=2001.0)
    assert await store.queue_stats("empty") == QueueStats(depth=0, oldest_queued_at=None)
    assert await store.queue_stats("unknown") == QueueStats(depth=0, oldest_queued_at=None)


# -- retention --------------------------------------------------------------------------------
async def test_delete_finished_forgets_old_finished_sets_and_their_attempts(store: Store) -> None:
    names = ("old-delivered", "old-failed", "old-dropped", "recent", "waiting")
    await with_stream(store, "s1", *(queued("s1", name) for name in names))
    old_push = attempt("s1", "old-delivered", 1000.0)
    await store.complete("s1", ["old-delivered"], at=1000.0, attempts=[old_push])
    await store.complete("s1", ["old-failed"], at=1500.0, state=DeliveryState.FAILED)
    await store.complete("s1", ["recent"], at=5000.0)
    await store.purge_pending("s1", at=1800.0)  # old-dropped and waiting are dropped ...
    await store.enqueue([dataclasses.replace(queued("s1", "new"), queued_at=100.0)])  # pending stays
    await store.record_attempt(failure("s1", "new", 900.0), next_attempt_at=9000.0, last_error="HTTP 503")

    assert await store.delete_finished(before=2000.0) == 4

    for gone in ("old-delivered", "old-failed", "old-dropped", "waiting"):
        assert await store.trace(gone) == [], gone
    assert (await only_trace(store, "recent")).state is DeliveryState.DELIVERED
    assert await jtis(store, "s1") == ["new"]
    assert len((await only_trace(store, "new")).attempts) == 1
    assert await store.delete_finished(before=2000.0) == 0
    # The attempts went with their SET: the same jti queued again has no history.
    await store.enqueue([queued("s1", "old-delivered")])
    assert (await only_trace(store, "old-delivered")).attempts == ()


async def test_delete_finished_keeps_sets_that_finished_at_or_after_the_cut_off(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"))
    await store.complete("s1", ["j1"], at=2000.0)
    await store.complete("s1", ["j2"], at=1999.0)

    assert await store.delete_finished(before=2000.0) == 1

    assert [t.jti for t in await store.trace("j1")] == ["j1"]
    assert await store.trace("j2") == []


async def test_delete_finished_trims_every_stream_and_leaves_their_queues_alone(store: Store) -> None:
    for sid in ("a", "b", "c"):
        await with_stream(store, sid, *(queued(sid, f"{sid}{n}") for n in range(3)))
        await store.complete(sid, [f"{sid}0", f"{sid}1"], at=1000.0)
    await store.complete("c", ["c2"], at=3000.0)
    await store.delete_stream("b")

    assert await store.delete_finished(before=2000.0) == 4  # a0 a1 c0 c1

    assert [await jtis(store, sid) for sid in ("a", "b", "c")] == [["a2"], [], []]
    assert [t.jti for t in await store.trace("c2")] == ["c2"]
    assert sorted(await store.streams_with_pending()) == ["a"]
    for gone in ("a0", "a1", "b0", "c0", "c1"):
        assert await store.trace(gone) == [], gone


# -- trace ------------------------------------------------------------------------------------
async def test_trace_by_txn_returns_every_streams_set_in_queue_order(store: Store) -> None:
    for sid in ("b", "a", "c"):
        await store.create_stream(make_stream(sid))
    fan_out = [
        dataclasses.replace(queued(sid, f"{sid}-1"), txn="txn-shared", queued_at=2000.0) for sid in ("b", "a")
    ]
    await store.enqueue([queued("c", "c-0"), *fan_out])
    await store.enqueue([dataclasses.replace(queued("c", "c-1"), txn="txn-shared")])
    await store.complete("a", ["a-1"], at=3000.0)

    traced = await store.trace("txn-shared")

    assert [(t.stream_id, t.jti, t.txn) for t in traced] == [
        ("b", "b-1", "txn-shared"),
        ("a", "a-1", "txn-shared"),
        ("c", "c-1", "txn-shared"),
    ]
    pending, delivered = DeliveryState.PENDING, DeliveryState.DELIVERED
    assert [t.state for t in traced] == [pending, delivered, pending]
    assert [t.jti for t in await store.trace("c-1")] == ["c-1"]
    assert await store.trace("unknown") == []


async def test_trace_by_jti_returns_that_set_with_what_was_queued(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1", control=True), queued("s1", "j2"))

    assert await store.trace("j1") == [
        SetTrace(
            stream_id="s1",
            jti="j1",
            txn="txn-j1",
            event_type=queued("s1", "j1", control=True).event_type,
            state=DeliveryState.PENDING,
            queued_at=2000.0,
            done_at=None,
        )
    ]
    no_txn = dataclasses.replace(queued("s1", "j3"), txn=None)
    await store.enqueue([no_txn])
    assert (await only_trace(store, "j3")).txn is None


async def test_a_deleted_streams_sets_leave_the_trace(store: Store) -> None:
    await with_stream(store, "s1", queued("s1", "j1"), queued("s1", "j2"))
    await store.complete("s1", ["j1"], at=3000.0, attempts=[attempt("s1", "j1", 3000.0)])

    await store.delete_stream("s1")

    assert await store.trace("j1") == []
    assert await store.trace("j2") == []
    assert await store.streams_with_pending() == []


# -- delivery health --------------------------------------------------------------------------
async def test_health_defaults_to_healthy_and_round_trips(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.create_stream(make_stream("s2"))
    assert await store.get_health("s1") == DeliveryHealth()
    failing = DeliveryHealth(
        last_success_at=1000.0,
        last_error="HTTP 401: invalid_token",
        last_error_at=1500.5,
        failing_since=1200.0,
        auth_failing=True,
        consecutive_failures=7,
    )

    await store.save_health("s1", failing)

    assert await store.get_health("s1") == failing
    assert await store.get_health("s2") == DeliveryHealth()
    recovered = DeliveryHealth(last_success_at=1600.0)
    await store.save_health("s1", recovered)
    assert await store.get_health("s1") == recovered
    assert await store.get_health("unknown") == DeliveryHealth()


async def test_health_of_a_deleted_stream_is_forgotten_and_not_saved_again(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.save_health("s1", DeliveryHealth(consecutive_failures=3))
    await store.delete_stream("s1")

    await store.save_health("s1", DeliveryHealth(consecutive_failures=4))  # a worker finishing late

    assert await store.get_health("s1") == DeliveryHealth()
    await store.create_stream(make_stream("s1"))  # the same id again starts healthy
    assert await store.get_health("s1") == DeliveryHealth()


# -- leases -----------------------------------------------------------------------------------
async def test_a_lease_is_exclusive_until_its_ttl_passes(store: Store) -> None:
    assert await store.acquire_lease("push:s1", "hub-a", now=100.0, ttl=10.0) is True

    assert await store.acquire_lease("push:s1", "hub-b", now=101.0, ttl=10.0) is False
    assert await store.acquire_lease("push:s1", "hub-b", now=109.5, ttl=10.0) is False
    assert await store.acquire_lease("push:s2", "hub-b", now=101.0, ttl=10.0) is True  # names are separate

    assert await store.acquire_lease("push:s1", "hub-b", now=111.0, ttl=10.0) is True  # hub-a's ran out
    assert await store.acquire_lease("push:s1", "hub-a", now=112.0, ttl=10.0) is False


async def test_the_holder_renews_its_lease(store: Store) -> None:
    assert await store.acquire_lease("job:retention", "hub-a", now=100.0, ttl=10.0) is True

    assert await store.acquire_lease("job:retention", "hub-a", now=108.0, ttl=10.0) is True

    # Without the renewal the lease would have run out at 110; now it lasts until 118.
    assert await store.acquire_lease("job:retention", "hub-b", now=112.0, ttl=10.0) is False
    assert await store.acquire_lease("job:retention", "hub-b", now=119.0, ttl=10.0) is True


async def test_release_frees_the_lease_at_once_but_only_for_its_holder(store: Store) -> None:
    assert await store.acquire_lease("push:s1", "hub-a", now=100.0, ttl=60.0) is True

    await store.release_lease("push:s1", "hub-b")  # not the holder: nothing happens
    await store.release_lease("other", "hub-a")
    assert await store.acquire_lease("push:s1", "hub-b", now=101.0, ttl=60.0) is False

    await store.release_lease("push:s1", "hub-a")
    assert await store.acquire_lease("push:s1", "hub-b", now=102.0, ttl=60.0) is True
    assert await store.acquire_lease("push:s1", "hub-a", now=103.0, ttl=60.0) is False
    await store.release_lease("push:s1", "hub-a")  # hub-a no longer holds it: hub-b keeps it
    assert await store.acquire_lease("push:s1", "hub-a", now=104.0, ttl=60.0) is False


async def test_releasing_a_lease_nobody_holds_is_harmless(store: Store) -> None:
    await store.release_lease("never-taken", "hub-a")

    assert await store.acquire_lease("never-taken", "hub-a", now=100.0, ttl=10.0) is True
