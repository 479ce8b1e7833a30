"""The Store contract: what every backend (SQLite, Redis) must do, backend by backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from hub.core.model import (
    PUSH_METHOD,
    AuditRecord,
    Delivery,
    QueuedSet,
    Status,
    Stream,
    SubjectEntry,
    SubjectMode,
)
from hub.keys.secrets import SecretBox
from hub.store import Store

RISC = "https://schemas.openid.net/secevent/risc/event-type/"
CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"

StoreFactory = Callable[[], Store]  # the ``new_store`` fixture (conftest.py)


def make_stream(
    stream_id: str, owner: str = "alice", created_at: float = 1000.0, **changes: object
) -> Stream:
    stream = Stream(
        stream_id=stream_id,
        owner=owner,
        iss="https://hub.example",
        aud=f"https://{owner}.example",
        delivery=Delivery(method="urn:ietf:rfc:8936"),
        events_delivered=(CAEP + "session-revoked",),
        created_at=created_at,
        updated_at=created_at,
        last_activity_at=created_at,
    )
    return dataclasses.replace(stream, **changes)  # type: ignore[arg-type]


def queued(stream_id: str, jti: str, *, control: bool = False) -> QueuedSet:
    return QueuedSet(
        stream_id=stream_id,
        jti=jti,
        set_jwt=f"header.{stream_id}-{jti}.sig",
        event_type=VERIFICATION if control else CAEP + "session-revoked",
        txn=f"txn-{jti}",
        control=control,
        queued_at=2000.0,
    )


def subject(stream_id: str, email: str, *, excluded: bool = False) -> SubjectEntry:
    return SubjectEntry(
        stream_id=stream_id,
        key=f"email:{email}",
        subject={"format": "email", "email": email},
        excluded=excluded,
    )


async def jtis(store: Store, stream_id: str, limit: int = 100, *, control_only: bool = False) -> list[str]:
    return [item.jti for item in await store.pending(stream_id, limit, control_only=control_only)]


# -- streams ----------------------------------------------------------------------------------
async def test_a_stored_stream_reads_back_equal_to_the_original(store: Store) -> None:
    stream = make_stream(
        "s1",
        delivery=Delivery(PUSH_METHOD, "https://rx.example/events", "Bearer rx-secret"),
        events_requested=(CAEP + "session-revoked", RISC + "account-disabled"),
        description="équipe des agents ✓",
        status=Status.PAUSED,
        status_reason="maintenance",
        subject_mode=SubjectMode.ALL,
        min_verification_interval=30,
        inactivity_timeout=86400,
        updated_at=1001.5,
        last_verification_at=1000.25,
    )
    await store.create_stream(stream)

    assert await store.get_stream("s1") == stream
    assert Stream.from_record((await store.get_streams(["s1"]))["s1"].to_record()) == stream


async def test_an_unknown_stream_is_none(store: Store) -> None:
    assert await store.get_stream("nope") is None


async def test_get_streams_returns_the_existing_ones_by_id(store: Store) -> None:
    for sid in ("a", "b", "c"):
        await store.create_stream(make_stream(sid))
    # More ids than old SQLite builds take in one statement (999): the store must batch them.
    wanted = ["c", "a", *(f"missing-{n}" for n in range(5_000))]

    found = await store.get_streams(wanted)

    assert sorted(found) == ["a", "c"]
    assert found["c"] == make_stream("c")
    assert await store.get_streams([]) == {}


async def test_list_streams_filters_by_owner_and_returns_oldest_first(store: Store) -> None:
    await store.create_stream(make_stream("late", owner="alice", created_at=300.0))
    await store.create_stream(make_stream("bob-1", owner="bob", created_at=200.0))
    await store.create_stream(make_stream("early", owner="alice", created_at=100.0))

    assert [s.stream_id for s in await store.list_streams("alice")] == ["early", "late"]
    assert [s.stream_id for s in await store.list_streams("bob")] == ["bob-1"]
    assert [s.stream_id for s in await store.list_streams()] == ["early", "bob-1", "late"]
    assert await store.list_streams("carol") == []


async def test_save_stream_overwrites_the_stored_record(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    changed = make_stream("s1", status=Status.DISABLED, status_reason="abuse", updated_at=5000.0)

    await store.save_stream(changed)

    assert await store.get_stream("s1") == changed
    assert (await store.list_streams("alice"))[0].status is Status.DISABLED


async def test_delete_stream_takes_its_subjects_queue_and_set_errors_along(store: Store) -> None:
    for sid in ("gone", "kept"):
        await store.create_stream(make_stream(sid))
        await store.put_subject(subject(sid, "ann@example.com"), ["email:ann@example.com"])
        await store.enqueue([queued(sid, "j1"), queued(sid, "j2", control=True)])
        await store.record_set_errors(sid, {"j0": ("jwtAud", "wrong aud")}, at=10.0)

    assert await store.delete_stream("gone") is True

    assert await store.get_stream("gone") is None
    assert await store.list_subjects("gone") == []
    assert await store.count_pending("gone") == 0
    assert await store.list_set_errors("gone") == []
    assert [e.stream_id for e in await store.find_subjects(["email:ann@example.com"])] == ["kept"]
    assert await jtis(store, "kept") == ["j1", "j2"]
    assert await store.delete_stream("gone") is False


# -- subjects ---------------------------------------------------------------------------------
async def test_put_subject_adds_then_replaces_entry_and_index_keys(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    first = subject("s1", "ann@example.com")
    await store.put_subject(first, ["email:ann@example.com", "old-key"])
    replaced = dataclasses.replace(first, subject={"format": "opaque", "id": "ann"}, excluded=True)

    await store.put_subject(replaced, ["email:ann@example.com", "new-key"])

    assert await store.list_subjects("s1") == [replaced]
    assert await store.find_subjects(["old-key"]) == []
    assert await store.find_subjects(["new-key"]) == [replaced]


async def test_remove_subject_unfiles_it(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.put_subject(subject("s1", "ann@example.com"), ["email:ann@example.com"])

    assert await store.remove_subject("s1", "email:ann@example.com") is True

    assert await store.list_subjects("s1") == []
    assert await store.find_subjects(["email:ann@example.com"]) == []
    assert await store.remove_subject("s1", "email:ann@example.com") is False


async def test_find_subjects_searches_all_streams_and_returns_each_entry_once(store: Store) -> None:
    for sid in ("s1", "s2", "s3"):
        await store.create_stream(make_stream(sid))
    ann = ["email:ann@example.com", "tenant:acme"]
    await store.put_subject(subject("s1", "ann@example.com"), ann)
    await store.put_subject(subject("s2", "ann@example.com", excluded=True), ann)
    await store.put_subject(subject("s3", "bob@example.com"), ["email:bob@example.com"])
    # The matching keys sit among more keys than old SQLite builds take in one statement (999).
    keys = [*(f"other:{n}" for n in range(5_000)), "email:ann@example.com", "tenant:acme"]

    found = await store.find_subjects(keys)

    assert sorted(found, key=lambda e: e.stream_id) == [
        subject("s1", "ann@example.com"),
        subject("s2", "ann@example.com", excluded=True),
    ]
    assert await store.find_subjects(["nobody"]) == []


async def test_streams_with_all_subjects_follows_save_stream(store: Store) -> None:
    await store.create_stream(make_stream("all", subject_mode=SubjectMode.ALL))
    await store.create_stream(make_stream("none", created_at=2000.0))
    assert await store.streams_with_all_subjects() == ["all"]

    await store.save_stream(make_stream("none", created_at=2000.0, subject_mode=SubjectMode.ALL))
    await store.save_stream(make_stream("all", subject_mode=SubjectMode.NONE))

    assert await store.streams_with_all_subjects() == ["none"]


# -- queues -----------------------------------------------------------------------------------
async def test_each_stream_keeps_its_own_queue_order_across_interleaved_enqueues(store: Store) -> None:
    await store.create_stream(make_stream("a"))
    await store.create_stream(make_stream("b"))

    await store.enqueue([queued("a", "a1"), queued("b", "b1"), queued("a", "a2")])
    await store.enqueue([queued("b", "b2")])
    await store.enqueue([queued("a", "a3"), queued("b", "b3")])

    assert await jtis(store, "a") == ["a1", "a2", "a3"]
    assert await jtis(store, "b") == ["b1", "b2", "b3"]
    assert await store.pending("a", 1) == [queued("a", "a1")]


async def test_pending_returns_at_most_limit_oldest_first(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.enqueue([queued("s1", f"j{n}") for n in range(5)])

    assert await jtis(store, "s1", 2) == ["j0", "j1"]
    assert await jtis(store, "s1", 0) == []
    assert await store.count_pending("s1") == 5
    assert await store.count_pending("unknown") == 0


async def test_control_only_reads_just_the_control_sets(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.enqueue([queued("s1", "e1"), queued("s1", "c1", control=True), queued("s1", "e2")])
    await store.enqueue([queued("s1", "c2", control=True)])

    assert await jtis(store, "s1", control_only=True) == ["c1", "c2"]
    assert await jtis(store, "s1", 1, control_only=True) == ["c1"]
    assert await store.count_pending("s1", control_only=True) == 2


async def test_complete_takes_known_jtis_off_the_queue_and_ignores_unknown_ones(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.create_stream(make_stream("s2"))
    await store.enqueue([queued("s1", "j1"), queued("s1", "j2"), queued("s1", "j3"), queued("s2", "j1")])

    assert await store.complete("s1", ["j1", "j3", "never-queued", "j1"], at=1.0) == 2

    assert await jtis(store, "s1") == ["j2"]
    assert await jtis(store, "s2") == ["j1"]
    assert await store.complete("s1", [], at=1.0) == 0


async def test_enqueueing_an_already_queued_jti_again_is_ignored(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.enqueue([queued("s1", "j1"), queued("s1", "j2")])
    again = dataclasses.replace(queued("s1", "j1"), set_jwt="a.different.jwt")

    await store.enqueue([again, queued("s1", "j3")])

    assert await store.pending("s1", 10) == [queued("s1", "j1"), queued("s1", "j2"), queued("s1", "j3")]


async def test_an_enqueue_batch_with_an_invalid_item_stores_none_of_the_batch(store: Store) -> None:
    await store.create_stream(make_stream("a"))
    await store.create_stream(make_stream("b"))
    broken = dataclasses.replace(queued("b", "bad"), set_jwt=None)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="rejected"):
        await store.enqueue([queued("a", "a1"), queued("b", "b1"), broken, queued("a", "a2")])

    assert await store.count_pending("a") == 0
    assert await store.count_pending("b") == 0


async def test_sets_for_a_stream_that_no_longer_exists_are_dropped(store: Store) -> None:
    # A fan-out that raced a delete must neither fail the other streams nor leave orphans.
    await store.create_stream(make_stream("live"))

    await store.enqueue([queued("deleted", "j1"), queued("live", "j1")])

    assert await jtis(store, "live") == ["j1"]
    assert await store.count_pending("deleted") == 0


async def test_purge_pending_keeps_control_sets_unless_told_not_to(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.enqueue([queued("s1", "e1"), queued("s1", "c1", control=True), queued("s1", "e2")])

    assert await store.purge_pending("s1", at=1.0) == 2
    assert await jtis(store, "s1") == ["c1"]

    assert await store.purge_pending("s1", at=1.0, keep_control=False) == 1
    assert await store.count_pending("s1") == 0


# -- records ----------------------------------------------------------------------------------
async def test_set_errors_are_kept_and_listed_newest_first(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.record_set_errors("s1", {"j1": ("jwtAud", "audience mismatch")}, at=10.0)
    await store.record_set_errors("s1", {"j2": ("invalid_key", "kid unknown")}, at=20.0)

    assert await store.list_set_errors("s1") == [
        {"jti": "j2", "err": "invalid_key", "description": "kid unknown", "at": 20.0},
        {"jti": "j1", "err": "jwtAud", "description": "audience mismatch", "at": 10.0},
    ]
    assert [e["jti"] for e in await store.list_set_errors("s1", limit=1)] == ["j2"]
    assert await store.list_set_errors("other") == []


async def test_audit_is_listed_newest_first_filtered_by_stream_and_outlives_it(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    created = AuditRecord(at=1.0, kind="stream.created", stream_id="s1", detail={"owner": "alice"})
    login = AuditRecord(at=2.0, kind="admin.login", stream_id=None)
    deleted = AuditRecord(at=3.0, kind="stream.deleted", stream_id="s1", detail={"by": ["alice"]})
    for record in (created, login, deleted):
        await store.append_audit(record)

    await store.delete_stream("s1")

    assert await store.list_audit() == [deleted, login, created]
    assert await store.list_audit("s1") == [deleted, created]
    assert await store.list_audit(limit=1) == [deleted]


async def test_audit_is_filtered_by_time_txn_and_actor_and_pruned_by_age(store: Store) -> None:
    emitted = AuditRecord(
        at=10.0, kind="event_emitted", stream_id=None, detail={"actor": "secops", "txn": "t1"}
    )
    ingested = AuditRecord(
        at=20.0, kind="ingest_accepted", stream_id=None, detail={"actor": "idp", "txn": "t2"}
    )
    paused = AuditRecord(at=30.0, kind="status_changed", stream_id="s1", detail={"actor": "secops"})
    for record in (emitted, ingested, paused):
        await store.append_audit(record)

    assert await store.list_audit(txn="t1") == [emitted]
    assert await store.list_audit(actor="secops") == [paused, emitted]
    assert await store.list_audit(since=15.0) == [paused, ingested]
    assert await store.list_audit(since=15.0, actor="secops") == [paused]
    assert await store.list_audit(txn="nope") == []
    assert await store.prune_audit(before=25.0) == 2
    assert await store.list_audit() == [paused]


async def test_push_credentials_are_sealed_at_rest(store: Store, new_store: StoreFactory) -> None:
    # Issue 13: a copy of the store without the hub's secrets key shows no credential.
    secret = "Bearer receiver-secret-123"
    push = Delivery(
        method="urn:ietf:rfc:8935", endpoint_url="https://a.example/ssf", authorization_header=secret
    )
    await store.create_stream(make_stream("legacy", delivery=push))  # written before sealing
    store.use_secrets(SecretBox.generate())
    await store.create_stream(make_stream("s1", delivery=push))
    assert (await store.get_stream("s1")).delivery.authorization_header == secret  # type: ignore[union-attr]
    assert (await store.get_stream("legacy")).delivery.authorization_header == secret  # type: ignore[union-attr]

    raw = new_store()  # the same data, read without the key
    await raw.open()
    try:
        sealed = (await raw.get_stream("s1")).delivery.authorization_header  # type: ignore[union-attr]
        assert sealed is not None and sealed.startswith("sealed:") and "receiver-secret" not in sealed
    finally:
        await raw.close()


# -- lifecycle --------------------------------------------------------------------------------
async def test_everything_written_survives_close_and_reopen(store: Store, new_store: StoreFactory) -> None:
    await store.create_stream(make_stream("s1", subject_mode=SubjectMode.ALL))
    await store.put_subject(subject("s1", "ann@example.com"), ["email:ann@example.com"])
    await store.enqueue([queued("s1", "j1"), queued("s1", "c1", control=True)])
    await store.record_set_errors("s1", {"j0": ("jwtIss", "issuer mismatch")}, at=5.0)
    await store.append_audit(AuditRecord(at=5.0, kind="stream.created", stream_id="s1"))
    await store.close()

    reopened = new_store()
    await reopened.open()
    try:
        assert await reopened.get_stream("s1") == make_stream("s1", subject_mode=SubjectMode.ALL)
        assert await reopened.find_subjects(["email:ann@example.com"]) == [subject("s1", "ann@example.com")]
        assert await reopened.streams_with_all_subjects() == ["s1"]
        assert await reopened.pending("s1", 10) == [queued("s1", "j1"), queued("s1", "c1", control=True)]
        assert [e["jti"] for e in await reopened.list_set_errors("s1")] == ["j0"]
        assert [r.kind for r in await reopened.list_audit("s1")] == ["stream.created"]
    finally:
        await reopened.close()


async def test_an_open_store_answers_ping_and_fits_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert await store.ping() is True
