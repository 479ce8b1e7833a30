"""What the Redis store adds to the shared contract: the key layout, TTLs, compare-and-set
key documents, and how it behaves when Redis is unreachable or goes away."""

from __future__ import annotations

import hashlib
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, ClusterError, SlotNotCoveredError

from hub.core.model import AuditRecord, IngestReceipt
from hub.errors import ConfigError, Unavailable
from hub.store import RedisStore, open_store
from hub.store.redis_engine import cluster_url, guarded
from hub.store.redis_keys import RedisKeys, parse_member
from tests.store.test_store_contract import make_stream, queued, subject
from tests.store.test_store_delivery_contract import failure
from tests.support.hub import free_port
from tests.support.redis import RedisCluster, start_redis


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the same Redis, to look at what the store wrote."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


# -- opening ----------------------------------------------------------------------------------
def test_open_store_makes_an_unopened_redis_store(tmp_path: Path) -> None:
    store = open_store("redis", data_dir=tmp_path, redis_url="redis://127.0.0.1:6390/2")

    assert isinstance(store, RedisStore)
    assert store.url == "redis://127.0.0.1:6390/2"
    with pytest.raises(ConfigError, match="redis URL"):
        open_store("redis", data_dir=tmp_path)


def test_a_url_that_is_not_a_redis_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="redis://"):
        RedisStore("http://127.0.0.1:6379")


async def test_an_unreachable_redis_is_unavailable_naming_the_url_without_its_password() -> None:
    store = RedisStore(f"redis://:s3cret@127.0.0.1:{free_port()}/0", connect_timeout=0.5)

    expected = re.escape("cannot reach Redis at redis://:***@127.0.0.1")
    with pytest.raises(Unavailable, match=expected) as caught:
        await store.open()

    assert "s3cret" not in caught.value.description
    await store.close()


@pytest.mark.slow
async def test_an_outage_surfaces_as_unavailable_and_the_store_recovers_after_it(tmp_path: Path) -> None:
    with start_redis(tmp_path / "redis") as server:
        store = RedisStore(server.url, connect_timeout=0.5, command_timeout=1.0)
        await store.open()
        try:
            await store.create_stream(make_stream("s1"))
            server.stop(signal.SIGKILL)

            assert await store.ping() is False
            with pytest.raises(Unavailable) as caught:
                await store.enqueue([queued("s1", "j1")])
            assert caught.value.retry_after > 0
            with pytest.raises(Unavailable):
                await store.pending("s1", 10)

            server.start()  # no persistence: Redis comes back empty, the client reconnects
            assert await store.ping() is True
            await store.create_stream(make_stream("s2"))
            await store.enqueue([queued("s2", "j1")])
            assert [i.jti for i in await store.pending("s2", 10)] == ["j1"]
        finally:
            await store.close()


# -- the key layout ---------------------------------------------------------------------------
async def test_every_key_is_versioned_and_a_streams_keys_share_one_cluster_slot(
    redis_store: RedisStore, raw: aioredis.Redis
) -> None:
    sid = "stream-1"
    await redis_store.create_stream(make_stream(sid))
    await redis_store.put_subject(subject(sid, "ann@example.com"), ["email:ann@example.com"])
    await redis_store.enqueue([queued(sid, "j1"), queued(sid, "c1", control=True)])
    await redis_store.record_attempt(failure(sid, "j1", 2.0), next_attempt_at=1.0, last_error="HTTP 503")
    await redis_store.record_set_errors(sid, {"j0": ("jwtAud", "wrong aud")}, at=1.0)
    await redis_store.append_audit(AuditRecord(at=1.0, kind="stream.created", stream_id=sid))

    keys = sorted(str(k) for k in await raw.keys("*"))

    assert keys and all(k.startswith("ssfhub:v2:") for k in keys)
    per_stream = [k for k in keys if "{s:" in k]
    assert {k.split("}:", 1)[1] for k in per_stream} >= {
        "stream",
        "subjects",
        "seq",
        "queue",
        "control",
        "sets",
        "set:j1",
        "set:c1",
        "attempts:j1",
        "set-errors",
    }
    assert {key_slot(k.encode()) for k in per_stream} == {key_slot(b"{s:stream-1}")}
    shared = [k for k in keys if "{s:" not in k]
    assert {key_slot(k.encode()) for k in shared} == {key_slot(b"{hub}")}


async def test_a_subject_lookup_reads_the_index_key_it_names(
    redis_store: RedisStore, raw: aioredis.Redis
) -> None:
    await redis_store.create_stream(make_stream("s1"))
    await redis_store.put_subject(subject("s1", "ann@example.com"), ["email:ann@example.com"])
    index = RedisKeys().subject_index("email:ann@example.com")

    (filed,) = await raw.smembers(index)
    assert parse_member(str(filed)) == ("s1", "email:ann@example.com")  # plus the nonce of this write
    await raw.delete(index)  # with the index key gone, the subject cannot be found: no scan
    assert await redis_store.find_subjects(["email:ann@example.com"]) == []


async def test_deleting_a_stream_leaves_no_key_of_it_behind(
    redis_store: RedisStore, raw: aioredis.Redis
) -> None:
    await redis_store.create_stream(make_stream("s1"))
    await redis_store.put_subject(subject("s1", "ann@example.com"), ["email:ann@example.com", "tenant:t"])
    await redis_store.enqueue([queued("s1", "j1"), queued("s1", "j2")])
    await redis_store.complete("s1", ["j1"], at=5.0)
    await redis_store.record_attempt(failure("s1", "j2", 2.0), next_attempt_at=9.0, last_error=None)

    await redis_store.delete_stream("s1")

    assert await raw.keys("*") == []


# -- TTLs -------------------------------------------------------------------------------------
async def test_ingest_receipts_and_leases_expire_in_redis_too(
    redis_store: RedisStore, raw: aioredis.Redis
) -> None:
    receipt = IngestReceipt(iss="https://idp.example", jti="up-1", received_at=5000.0, expires_at=5600.0)
    await redis_store.ingest(receipt, [])
    await redis_store.acquire_lease("job:retention", "hub-a", now=100.0, ttl=30.0)
    keys = RedisKeys()

    receipt_ttl = await raw.ttl(keys.receipt('["https://idp.example","up-1"]'))
    lease_ttl = await raw.ttl(keys.lease("job:retention"))

    assert 590 <= receipt_ttl <= 600  # the de-duplication window
    assert 25 <= lease_ttl <= 30


# -- key documents ----------------------------------------------------------------------------
async def test_key_documents_are_written_by_compare_and_set(redis_store: RedisStore) -> None:
    assert await redis_store.get_key_document("signing") is None

    assert await redis_store.put_key_document("signing", "ring-1", expected=None) is True
    assert await redis_store.put_key_document("signing", "ring-x", expected=None) is False
    assert await redis_store.put_key_document("signing", "ring-2", expected="ring-0") is False
    assert await redis_store.put_key_document("signing", "ring-2", expected="ring-1") is True

    assert await redis_store.get_key_document("signing") == "ring-2"


# -- Redis Cluster ----------------------------------------------------------------------------
def test_explicit_cluster_urls_are_accepted_and_mapped_to_plain_ones() -> None:
    assert RedisStore("redis+cluster://127.0.0.1:7000").url == "redis+cluster://127.0.0.1:7000"
    assert cluster_url("rediss+cluster://:pw@h:7000") == "rediss://:pw@h:7000"
    assert cluster_url("redis://h:7000/0") is None


async def test_a_cluster_url_naming_a_database_other_than_0_is_a_config_error(redis_cluster_url: str) -> None:
    store = RedisStore(redis_cluster_url.rsplit("/", 1)[0] + "/3")
    with pytest.raises(ConfigError, match="cannot name a Redis Cluster"):
        await store.open()
    await store.close()


@pytest.mark.parametrize(
    "error",
    [
        ClusterDownError("CLUSTERDOWN"),
        ClusterError("TTL exhausted."),
        SlotNotCoveredError("slot 7 not covered"),
    ],
)
async def test_cluster_failures_are_outages_answered_with_retry_after(error: Exception) -> None:
    class Failing:
        @guarded
        async def read(self) -> None:
            raise error

    with pytest.raises(Unavailable) as caught:
        await Failing().read()
    assert caught.value.retry_after > 0


async def test_a_script_missing_where_its_slot_now_lives_still_runs(
    redis_cluster: RedisCluster, redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Mid-failover a promoted replica has no scripts, and redis-py's one reload can reach the
    # node that was master a moment ago: the fault matrix's cluster-failover run got a 500
    # from emit this way. Here every node forgets its scripts, and the reload goes nowhere.
    store = RedisStore(redis_cluster_url)
    await store.open()
    try:
        streams = [f"s{i}" for i in range(6)]  # spread over the three masters
        for sid in streams:
            await store.create_stream(make_stream(sid))
        await store.enqueue([queued(sid, "before") for sid in streams])
        for node in redis_cluster.nodes:
            with redis.Redis(port=node.port, socket_timeout=5) as client:
                client.script_flush()

        async def load_elsewhere(script: str) -> str:
            return hashlib.sha1(script.encode()).hexdigest()

        monkeypatch.setattr(store.client, "script_load", load_elsewhere)
        await store.enqueue([queued(sid, "after") for sid in streams])
        for sid in streams:
            assert [q.jti for q in await store.pending(sid, 10)] == ["before", "after"]
    finally:
        await store.close()
