"""The Store contract for issue #4: trusted issuers and atomic, de-duplicated ingest."""

from __future__ import annotations

import asyncio
import dataclasses

from hub.core.issuers import TrustedIssuer
from hub.core.model import IngestReceipt
from hub.store import Store
from tests.store.test_store_contract import StoreFactory, make_stream, queued

IDP = "https://idp.example.com"
JWKS = {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "k1"}]}


def issuer(iss: str = IDP, **changes: object) -> TrustedIssuer:
    base = TrustedIssuer(iss=iss, jwks_uri=f"{iss}/jwks", added_at=1000.0)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def receipt(jti: str, *, iss: str = IDP, at: float = 5000.0, ttl: float = 100.0) -> IngestReceipt:
    return IngestReceipt(iss=iss, jti=jti, received_at=at, expires_at=at + ttl, txn=f"txn-{jti}")


# -- the issuer registry ---------------------------------------------------------------------------


async def test_an_issuer_round_trips_with_every_field(store: Store) -> None:
    full = issuer(
        jwks_uri=None,
        jwks=JWKS,
        algorithms=("ES256", "EdDSA"),
        event_types=("https://schemas.openid.net/secevent/caep/event-type/session-revoked",),
        subject_patterns=("email:*@example.com",),
    )
    await store.put_issuer(full)

    assert await store.get_issuer(IDP) == full
    assert await store.get_issuer("https://stranger.example") is None


async def test_put_replaces_and_list_is_ordered_by_iss(store: Store) -> None:
    await store.put_issuer(issuer("https://b.example"))
    await store.put_issuer(issuer("https://a.example"))
    await store.put_issuer(issuer("https://b.example", algorithms=("PS256",)))

    listed = await store.list_issuers()

    assert [i.iss for i in listed] == ["https://a.example", "https://b.example"]
    assert listed[1].algorithms == ("PS256",)


async def test_remove_reports_whether_the_issuer_was_there(store: Store) -> None:
    await store.put_issuer(issuer())

    assert await store.remove_issuer(IDP) is True
    assert await store.remove_issuer(IDP) is False
    assert await store.list_issuers() == []


async def test_the_registry_version_changes_on_every_change_and_only_then(store: Store) -> None:
    start = await store.issuers_version()
    await store.put_issuer(issuer())
    after_put = await store.issuers_version()
    await store.remove_issuer("https://never-added.example")
    after_noop = await store.issuers_version()
    await store.remove_issuer(IDP)
    after_remove = await store.issuers_version()

    assert after_put != start
    assert after_noop == after_put  # nothing changed, no reload needed
    assert after_remove not in (start, after_put)


async def test_issuers_survive_reopening(new_store: StoreFactory) -> None:
    first = new_store()
    await first.open()
    await first.put_issuer(issuer())
    version = await first.issuers_version()
    await first.close()

    second = new_store()
    await second.open()
    try:
        assert await second.get_issuer(IDP) == issuer()
        assert await second.issuers_version() == version
    finally:
        await second.close()


# -- atomic ingest with duplicate refusal (R-SET-2, R-SEC-3) -----------------------------------------


async def test_ingest_records_the_receipt_and_queues_every_set(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.create_stream(make_stream("s2"))

    stored = await store.ingest(receipt("up-1"), [queued("s1", "a"), queued("s2", "b")])

    assert stored is True
    assert [q.jti for q in await store.pending("s1", 10)] == ["a"]
    assert [q.jti for q in await store.pending("s2", 10)] == ["b"]
    assert await store.was_ingested(IDP, "up-1", now=5001.0) is True


async def test_a_duplicate_is_refused_whole_and_queues_nothing(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.ingest(receipt("up-1"), [queued("s1", "a")])

    again = await store.ingest(receipt("up-1", at=5010.0), [queued("s1", "b")])

    assert again is False
    assert [q.jti for q in await store.pending("s1", 10)] == ["a"]


async def test_receipts_are_per_issuer(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.ingest(receipt("same-jti"), [queued("s1", "a")])

    other = await store.ingest(receipt("same-jti", iss="https://other.example"), [queued("s1", "b")])

    assert other is True
    assert [q.jti for q in await store.pending("s1", 10)] == ["a", "b"]


async def test_a_receipt_with_no_sets_still_refuses_the_duplicate(store: Store) -> None:
    # An accepted SET no stream wanted is still the same SET when it comes again.
    assert await store.ingest(receipt("up-1"), []) is True
    assert await store.ingest(receipt("up-1"), []) is False


async def test_an_expired_receipt_counts_as_new(store: Store) -> None:
    await store.create_stream(make_stream("s1"))
    await store.ingest(receipt("up-1", at=5000.0, ttl=100.0), [queued("s1", "a")])

    assert await store.was_ingested(IDP, "up-1", now=5099.0) is True
    assert await store.was_ingested(IDP, "up-1", now=5100.0) is False
    assert await store.ingest(receipt("up-1", at=5100.0), [queued("s1", "b")]) is True
    assert [q.jti for q in await store.pending("s1", 10)] == ["a", "b"]


async def test_sets_for_a_deleted_stream_are_dropped_but_the_receipt_is_kept(store: Store) -> None:
    await store.create_stream(make_stream("s1"))

    assert await store.ingest(receipt("up-1"), [queued("s1", "a"), queued("gone", "b")]) is True
    assert [q.jti for q in await store.pending("s1", 10)] == ["a"]
    assert await store.streams_with_pending() == ["s1"]


async def test_retention_forgets_only_expired_receipts(store: Store) -> None:
    await store.ingest(receipt("old", at=1000.0, ttl=100.0), [])
    await store.ingest(receipt("new", at=5000.0, ttl=100.0), [])

    forgotten = await store.forget_ingested(before=2000.0)

    assert forgotten == 1
    assert await store.was_ingested(IDP, "old", now=1050.0) is False
    assert await store.was_ingested(IDP, "new", now=5050.0) is True


async def test_receipts_survive_reopening(new_store: StoreFactory) -> None:
    first = new_store()
    await first.open()
    await first.ingest(receipt("up-1"), [])
    await first.close()

    second = new_store()
    await second.open()
    try:
        assert await second.ingest(receipt("up-1"), []) is False
    finally:
        await second.close()


async def test_concurrent_copies_of_one_set_are_stored_once(store: Store) -> None:
    copies = 8
    await store.create_stream(make_stream("s1"))
    results = await asyncio.gather(
        *(store.ingest(receipt("up-1"), [queued("s1", f"copy-{n}")]) for n in range(copies))
    )

    assert sorted(results) == [False] * (copies - 1) + [True]
    assert len(await store.pending("s1", 100)) == 1
