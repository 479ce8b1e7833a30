"""The Redis store: several hub replicas share one Redis (key layout: ``redis_keys``).

Durability follows Redis's persistence setting (README, "Running on Redis"): with
``appendonly yes`` and ``appendfsync everysec`` a write acknowledged more than a second
before a Redis crash survives it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

from hub.core.model import AuditRecord, Stream, SubjectEntry
from hub.store import redis_scripts as lua
from hub.store.redis_engine import guarded
from hub.store.redis_ingest import RedisIngest
from hub.store.redis_keys import member, parse_member
from hub.store.redis_queue import dumps, number

# setErrs come from receivers; keep a bounded, recent window per stream for admins.
SET_ERRORS_KEPT = 1000
# The audit trail is capped so Redis memory stays bounded; the newest records are kept.
AUDIT_KEPT = 100_000
STREAM_AUDIT_KEPT = 10_000
READ_BATCH = 1000  # keys per pipeline round trip


class RedisStore(RedisIngest):
    """The :class:`~hub.store.base.Store` on Redis (redis-py's asyncio client)."""

    # -- streams -------------------------------------------------------------------------------
    @guarded
    async def create_stream(self, stream: Stream) -> None:
        await self._run(lua.CREATE_STREAM, *self._stream_args(stream))

    @guarded
    async def save_stream(self, stream: Stream) -> None:
        await self._run(lua.SAVE_STREAM, *self._stream_args(stream))

    @staticmethod
    def _stream_args(stream: Stream) -> tuple[str, ...]:
        """id, record, owner, subject mode and created_at (the fields the indexes use)."""
        record = dumps(stream.to_record())
        return (stream.stream_id, record, stream.owner, stream.subject_mode.value, number(stream.created_at))

    @guarded
    async def get_stream(self, stream_id: str) -> Stream | None:
        record = await self.client.hget(self.keys.stream(stream_id), "record")
        return None if record is None else Stream.from_record(json.loads(record))

    @guarded
    async def get_streams(self, stream_ids: Iterable[str]) -> dict[str, Stream]:
        return {s.stream_id: s for s in await self._read_streams(list(dict.fromkeys(stream_ids)))}

    @guarded
    async def list_streams(self, owner: str | None = None) -> list[Stream]:
        # Sorted-set order is (created_at, stream_id), as on SQLite.
        index = self.keys.streams if owner is None else self.keys.owner(owner)
        return await self._read_streams(cast(list[str], await self.client.zrange(index, 0, -1)))

    async def _read_streams(self, ids: list[str]) -> list[Stream]:
        out: list[Stream] = []
        for start in range(0, len(ids), READ_BATCH):
            async with self.client.pipeline(transaction=False) as pipe:
                for stream_id in ids[start : start + READ_BATCH]:
                    pipe.hget(self.keys.stream(stream_id), "record")
                records = await pipe.execute()
            out.extend(Stream.from_record(json.loads(r)) for r in records if r is not None)
        return out

    @guarded
    async def delete_stream(self, stream_id: str) -> bool:
        return bool(await self._run(lua.DELETE_STREAM, stream_id))

    # -- subjects ------------------------------------------------------------------------------
    @guarded
    async def put_subject(self, entry: SubjectEntry, index_keys: Sequence[str]) -> None:
        keys = list(dict.fromkeys(index_keys))
        filed = member(entry.stream_id, entry.key)
        record = dumps({"subject": entry.subject, "excluded": entry.excluded, "index": keys, "member": filed})
        if not await self._run(lua.PUT_SUBJECT, entry.stream_id, entry.key, record, filed, *keys):
            raise ValueError(f"the store rejected the write: stream {entry.stream_id!r} does not exist")

    @guarded
    async def remove_subject(self, stream_id: str, key: str) -> bool:
        return bool(await self._run(lua.REMOVE_SUBJECT, stream_id, key))

    @guarded
    async def list_subjects(self, stream_id: str) -> list[SubjectEntry]:
        entries = cast(dict[str, str], await self.client.hgetall(self.keys.subjects(stream_id)))
        return [_subject(stream_id, key, entries[key]) for key in sorted(entries)]

    @guarded
    async def find_subjects(self, index_keys: Iterable[str]) -> list[SubjectEntry]:
        keys = list(dict.fromkeys(index_keys))
        members: set[str] = set()
        for start in range(0, len(keys), READ_BATCH):
            async with self.client.pipeline(transaction=False) as pipe:
                for index_key in keys[start : start + READ_BATCH]:
                    pipe.smembers(self.keys.subject_index(index_key))
                for found in await pipe.execute():
                    members.update(found)
        wanted = sorted(parse_member(m) for m in members)
        out: list[SubjectEntry] = []
        for start in range(0, len(wanted), READ_BATCH):
            batch = wanted[start : start + READ_BATCH]
            async with self.client.pipeline(transaction=False) as pipe:
                for stream_id, key in batch:
                    pipe.hget(self.keys.subjects(stream_id), key)
                records = await pipe.execute()
            # A subject removed between the two reads is simply not found.
            out.extend(_subject(sid, key, r) for (sid, key), r in zip(batch, records, strict=True) if r)
        return out

    @guarded
    async def streams_with_all_subjects(self) -> list[str]:
        return cast(list[str], await self.client.zrange(self.keys.all_subjects, 0, -1))

    # -- records -------------------------------------------------------------------------------
    @guarded
    async def record_set_errors(
        self, stream_id: str, errors: Mapping[str, tuple[str, str]], at: float
    ) -> None:
        if not errors:
            return
        records = [
            dumps({"jti": jti, "err": err, "description": desc, "at": at})
            for jti, (err, desc) in errors.items()
        ]
        await self._run(lua.RECORD_SET_ERRORS, stream_id, SET_ERRORS_KEPT, *records)

    @guarded
    async def list_set_errors(self, stream_id: str, limit: int = 100) -> list[dict[str, object]]:
        if limit <= 0:
            return []
        return [
            json.loads(r) for r in await self.client.lrange(self.keys.set_errors(stream_id), 0, limit - 1)
        ]

    @guarded
    async def append_audit(self, record: AuditRecord) -> None:
        text = dumps([record.at, record.kind, record.stream_id, record.detail])
        # Both lists share the {hub} slot, so one MULTI covers them.
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(self.keys.audit(), text)
            pipe.ltrim(self.keys.audit(), 0, AUDIT_KEPT - 1)
            if record.stream_id is not None:
                pipe.lpush(self.keys.audit(record.stream_id), text)
                pipe.ltrim(self.keys.audit(record.stream_id), 0, STREAM_AUDIT_KEPT - 1)
            await pipe.execute()

    @guarded
    async def list_audit(self, stream_id: str | None = None, limit: int = 100) -> list[AuditRecord]:
        if limit <= 0:
            return []
        out = []
        for text in await self.client.lrange(self.keys.audit(stream_id), 0, limit - 1):
            at, kind, sid, detail = json.loads(text)
            out.append(AuditRecord(at=at, kind=kind, stream_id=sid, detail=detail))
        return out

    # -- key documents (the signing key ring and the token key, shared by replicas) ------------
    @guarded
    async def get_key_document(self, name: str) -> str | None:
        return cast(str | None, await self.client.get(self.keys.key_document(name)))

    @guarded
    async def put_key_document(self, name: str, document: str, *, expected: str | None) -> bool:
        """Store ``document`` if the current one is still ``expected`` (None: if there is none)."""
        args = ("0" if expected is None else "1", expected or "", document)
        return bool(await self._script(lua.COMPARE_AND_SET, [self.keys.key_document(name)], args))


def _subject(stream_id: str, key: str, text: str) -> SubjectEntry:
    data = json.loads(text)
    return SubjectEntry(
        stream_id=stream_id, key=key, subject=data["subject"], excluded=bool(data["excluded"])
    )
