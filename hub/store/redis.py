"""The Redis store: several hub replicas share one Redis primary or one Redis Cluster
(key layout, and how the shared indexes stay consistent with the streams: ``redis_keys``).

Durability follows Redis's persistence setting (README, "Running on Redis"): with
``appendonly yes`` and ``appendfsync everysec`` a write acknowledged more than a second
before a Redis crash survives it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from hub.core.model import AuditRecord, Stream, SubjectEntry, SubjectMode
from hub.store import redis_scripts as lua
from hub.store.redis_engine import guarded
from hub.store.redis_ingest import RedisIngest
from hub.store.redis_keys import parse_member, subject_member
from hub.store.redis_queue import READ_BATCH, dumps, number

# setErrs come from receivers; keep a bounded, recent window per stream for admins.
SET_ERRORS_KEPT = 1000
# The audit trail is capped so Redis memory stays bounded; the newest records are kept.
AUDIT_KEPT = 100_000
STREAM_AUDIT_KEPT = 10_000
NEEDS_INDEX = 2  # SAVE_STREAM's answer when the owner or subject mode changes


class RedisStore(RedisIngest):
    """The :class:`~hub.store.base.Store` on Redis (redis-py's asyncio client), on one
    primary or a Redis Cluster. The stream's slot is the truth; the ``{hub}`` indexes are
    supersets, maintained around it as ``redis_keys`` describes."""

    # -- streams -------------------------------------------------------------------------------
    @guarded
    async def create_stream(self, stream: Stream) -> None:
        await self._index_stream(stream)  # before the record: the registry stays a superset
        fields: dict[Any, Any] = self._stream_fields(stream)
        await self.client.hset(self.keys.stream(stream.stream_id), mapping=fields)

    @guarded
    async def save_stream(self, stream: Stream) -> None:
        sid, fields = stream.stream_id, self._stream_fields(stream)
        args = [fields["record"], fields["owner"], fields["mode"], fields["created_at"]]
        reply = await self._script(lua.SAVE_STREAM, [self.keys.stream(sid)], [*args, "0"])
        if int(reply[0]) != NEEDS_INDEX:
            return  # saved (owner and mode as before: the indexes hold it already), or gone
        # The owner or the subject mode changed: index the new values before and after
        # the write (a concurrent save may be removing them), unindex the old ones after.
        await self._index_stream(stream)
        reply = await self._script(lua.SAVE_STREAM, [self.keys.stream(sid)], [*args, "1"])
        if int(reply[0]) == 0:  # deleted meanwhile; its id never comes back
            await self._unindex_deleted(sid, stream.owner)
            return
        await self._index_stream(stream)
        old_owner = str(reply[1])
        score = stream.created_at
        if old_owner != stream.owner:
            await self._unindex(self.keys.owner(old_owner), sid, score, lambda owner, _: owner == old_owner)
        if stream.subject_mode is not SubjectMode.ALL:
            await self._unindex(self.keys.all_subjects, sid, score, lambda _, mode: mode == SubjectMode.ALL)

    @staticmethod
    def _stream_fields(stream: Stream) -> dict[str, str]:
        """The record and the fields the indexes are derived from."""
        return {
            "record": dumps(stream.to_record()),
            "owner": stream.owner,
            "mode": stream.subject_mode.value,
            "created_at": number(stream.created_at),
        }

    async def _index_stream(self, stream: Stream) -> None:
        score = {stream.stream_id: stream.created_at}
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(self.keys.streams, score)
            pipe.zadd(self.keys.owner(stream.owner), score)
            if stream.subject_mode is SubjectMode.ALL:
                pipe.zadd(self.keys.all_subjects, score)
            await pipe.execute()

    async def _unindex(
        self, index: str, stream_id: str, score: float, wanted: Callable[[str | None, str | None], bool]
    ) -> None:
        """Remove-then-recheck: drop the entry, then put it back if the record (read after
        the drop) still wants it, so a concurrent writer's entry is never lost."""
        await self.client.zrem(index, stream_id)
        owner, mode = cast(
            list[str | None], await self.client.hmget(self.keys.stream(stream_id), ["owner", "mode"])
        )
        if owner is not None and wanted(owner, mode):
            await self.client.zadd(index, {stream_id: score})

    async def _unindex_deleted(self, stream_id: str, owner: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.streams, stream_id)
            pipe.zrem(self.keys.owner(owner), stream_id)
            pipe.zrem(self.keys.all_subjects, stream_id)
            pipe.srem(self.keys.pending_streams, stream_id)
            await pipe.execute()

    @guarded
    async def get_stream(self, stream_id: str) -> Stream | None:
        record = await self.client.hget(self.keys.stream(stream_id), "record")
        return None if record is None else Stream.from_record(json.loads(record))

    @guarded
    async def get_streams(self, stream_ids: Iterable[str]) -> dict[str, Stream]:
        return {s.stream_id: s for s in await self._read_streams(list(dict.fromkeys(stream_ids)))}

    @guarded
    async def list_streams(self, owner: str | None = None) -> list[Stream]:
        # Sorted-set order is (created_at, stream_id), as on SQLite. The index is a
        # superset: ids without a record (or, after an owner change, of another owner) go.
        index = self.keys.streams if owner is None else self.keys.owner(owner)
        found = await self._read_streams(cast(list[str], await self.client.zrange(index, 0, -1)))
        return found if owner is None else [s for s in found if s.owner == owner]

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
        k = self.keys
        keys = [
            k.stream(stream_id),
            k.subjects(stream_id),
            k.stream_seq(stream_id),
            k.queue(stream_id),
            k.control(stream_id),
            k.sets(stream_id),
            k.finished(stream_id),
            k.health(stream_id),
            k.set_errors(stream_id),
        ]
        reply = await self._script(lua.DELETE_STREAM, keys, [k.stream_slot(stream_id)])
        if reply is None:
            return False
        # The record is gone; now its index entries (after, so they stay supersets).
        gone = json.loads(reply)
        await self._unindex_deleted(stream_id, gone["owner"])
        commands: list[tuple[str, str, str]] = []
        for filed, index_keys in _listed(gone["subjects"]):
            commands.extend(("srem", k.subject_index(index_key), filed) for index_key in _listed(index_keys))
        for jti, txn, filed in _listed(gone["sets"]):
            commands.append(("zrem", k.trace_jti(jti), stream_id))
            if txn:
                commands.append(("zrem", k.trace_txn(txn), filed))
        for start in range(0, len(commands), READ_BATCH):
            async with self.client.pipeline(transaction=False) as pipe:
                for command, key, value in commands[start : start + READ_BATCH]:
                    getattr(pipe, command)(key, value)
                await pipe.execute()
        return True

    # -- subjects ------------------------------------------------------------------------------
    @guarded
    async def put_subject(self, entry: SubjectEntry, index_keys: Sequence[str]) -> None:
        keys = list(dict.fromkeys(index_keys))
        # A member unique to this write: removing the entries of the subject it replaces
        # (below, or by a concurrent write) can never remove this write's own.
        filed = subject_member(entry.stream_id, entry.key)
        record = dumps({"subject": entry.subject, "excluded": entry.excluded, "index": keys, "member": filed})
        await self._file_subject(filed, keys, add=True)  # before the record: a superset
        stream_keys = [self.keys.stream(entry.stream_id), self.keys.subjects(entry.stream_id)]
        old = await self._script(lua.PUT_SUBJECT, stream_keys, [entry.key, record])
        if old is None:
            await self._file_subject(filed, keys, add=False)
            raise ValueError(f"the store rejected the write: stream {entry.stream_id!r} does not exist")
        if old:
            replaced = json.loads(old)
            await self._file_subject(replaced["member"], replaced["index"], add=False)

    @guarded
    async def remove_subject(self, stream_id: str, key: str) -> bool:
        old = await self._script(lua.REMOVE_SUBJECT, [self.keys.subjects(stream_id)], [key])
        if old is None:
            return False
        removed = json.loads(old)
        await self._file_subject(removed["member"], removed["index"], add=False)
        return True

    async def _file_subject(self, filed: str, index_keys: Sequence[str], *, add: bool) -> None:
        if not index_keys:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            for index_key in index_keys:
                if add:
                    pipe.sadd(self.keys.subject_index(index_key), filed)
                else:
                    pipe.srem(self.keys.subject_index(index_key), filed)
            await pipe.execute()

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
        wanted = sorted((*parse_member(m), m) for m in members)
        out: dict[tuple[str, str], SubjectEntry] = {}
        for start in range(0, len(wanted), READ_BATCH):
            batch = wanted[start : start + READ_BATCH]
            async with self.client.pipeline(transaction=False) as pipe:
                for stream_id, key, _ in batch:
                    pipe.hget(self.keys.subjects(stream_id), key)
                records = await pipe.execute()
            # The index is a superset: a member counts only if it is the subject's current
            # write (a subject removed or replaced between the two reads is not found).
            for (sid, key, filed), text in zip(batch, records, strict=True):
                if text and json.loads(text).get("member") == filed:
                    out[sid, key] = _subject(sid, key, text)
        return list(out.values())

    @guarded
    async def streams_with_all_subjects(self) -> list[str]:
        candidates = cast(list[str], await self.client.zrange(self.keys.all_subjects, 0, -1))
        modes: list[str | None] = []
        for start in range(0, len(candidates), READ_BATCH):
            async with self.client.pipeline(transaction=False) as pipe:
                for stream_id in candidates[start : start + READ_BATCH]:
                    pipe.hget(self.keys.stream(stream_id), "mode")
                modes.extend(await pipe.execute())
        return [sid for sid, mode in zip(candidates, modes, strict=True) if mode == SubjectMode.ALL]

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
        keys = [self.keys.stream(stream_id), self.keys.set_errors(stream_id)]
        await self._script(lua.RECORD_SET_ERRORS, keys, [SET_ERRORS_KEPT, *records])

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


def _listed(value: Any) -> list[Any]:
    """A list from a Lua script's JSON (cjson writes an empty table as ``{}``)."""
    return value if isinstance(value, list) else []
