"""The Redis store: several hub replicas share one Redis primary or one Redis Cluster
(key layout, and how the shared indexes stay consistent with the streams: ``redis_keys``).

Durability follows Redis's persistence setting (README, "Running on Redis"): with
``appendonly yes`` and ``appendfsync everysec`` a write acknowledged more than a second
before a Redis crash survives it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any, cast

from hub.core.model import Stream, SubjectEntry, SubjectMode
from hub.store import redis_scripts as lua
from hub.store.redis_engine import guarded
from hub.store.redis_keys import parse_member, subject_member
from hub.store.redis_queue import READ_BATCH, dumps, number
from hub.store.redis_records import RedisRecords
from hub.store.sealing import open_stream, seal_stream

NEEDS_INDEX = 2  # SAVE_STREAM's answer when the owner or subject mode changes

# Routing one event reads the subject index (find_subjects) and then the streams that take
# every subject (streams_with_all_subjects); both indexes are in {hub}, so find_subjects
# reads the second in its own round trip and leaves it here, in the calling task's context
# (one task routes one event: no other request sees it), for the call that comes next.
_ALL_SUBJECTS_READ: ContextVar[tuple[float, list[str]] | None] = ContextVar("all_subjects_read", default=None)
ALL_SUBJECTS_READ_AGE = 0.5  # seconds; older than that, it is read again


class RedisStore(RedisRecords):
    """The :class:`~hub.store.base.Store` on Redis (redis-py's asyncio client), on one
    primary or a Redis Cluster. The stream's slot is the truth; the ``{hub}`` indexes are
    supersets, maintained around it as ``redis_keys`` describes."""

    # -- streams -------------------------------------------------------------------------------
    def _stream(self, text: str | bytes) -> Stream:
        return Stream.from_record(open_stream(json.loads(text), self.sealer))

    @guarded
    async def create_stream(self, stream: Stream) -> None:
        await self._index_stream(stream)  # before the record: the registry stays a superset
        fields: dict[Any, Any] = self._stream_fields(stream)
        await self.client.hset(self.keys.stream(stream.stream_id), mapping=fields)

    @guarded
    async def save_stream(self, stream: Stream) -> None:
        try:
            await self._save_stream(stream)
        finally:  # whatever happened, what this process kept may be out of date now
            self.cache.changed([stream.stream_id])

    async def _save_stream(self, stream: Stream) -> None:
        sid, fields = stream.stream_id, self._stream_fields(stream)
        args = [fields["record"], fields["owner"], fields["mode"], fields["created_at"]]
        announce = [self.keys.changes_channel, sid]
        reply = await self._script(lua.SAVE_STREAM, [self.keys.stream(sid)], [*args, "0", *announce])
        if int(reply[0]) != NEEDS_INDEX:
            return  # saved (owner and mode as before: the indexes hold it already), or gone
        # The owner or the subject mode changed: index the new values before and after
        # the write (a concurrent save may be removing them), unindex the old ones after.
        await self._index_stream(stream)
        reply = await self._script(lua.SAVE_STREAM, [self.keys.stream(sid)], [*args, "1", *announce])
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

    def _stream_fields(self, stream: Stream) -> dict[str, str]:
        """The record and the fields the indexes are derived from."""
        return {
            "record": dumps(seal_stream(stream.to_record(), self.sealer)),
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
        kept = self.cache.stream(stream_id)
        if kept is not None:
            return kept
        generation = self.cache.generation
        (record,) = await self._commands([("HGET", self.keys.stream(stream_id), "record")])
        if record is None:
            return None
        stream = self._stream(record)
        self.cache.keep_stream(stream, generation)
        return stream

    @guarded
    async def get_streams(self, stream_ids: Iterable[str]) -> dict[str, Stream]:
        out: dict[str, Stream] = {}
        missing = []
        for stream_id in dict.fromkeys(stream_ids):
            kept = self.cache.stream(stream_id)
            if kept is None:
                missing.append(stream_id)
            else:
                out[stream_id] = kept
        if missing:
            generation = self.cache.generation
            for stream in await self._read_streams(missing):
                self.cache.keep_stream(stream, generation)
                out[stream.stream_id] = stream
        return out

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
            batch = ids[start : start + READ_BATCH]
            records = await self._commands([("HGET", self.keys.stream(sid), "record") for sid in batch])
            out.extend(self._stream(r) for r in records if r is not None)
        return out

    @guarded
    async def delete_stream(self, stream_id: str) -> bool:
        try:
            return await self._delete_stream(stream_id)
        finally:
            self.cache.changed([stream_id])

    async def _delete_stream(self, stream_id: str) -> bool:
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
        reply = await self._script(
            lua.DELETE_STREAM, keys, [k.stream_slot(stream_id), k.changes_channel, stream_id]
        )
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
        try:
            await self._put_subject(entry, index_keys)
        finally:
            self.cache.changed([entry.stream_id])

    async def _put_subject(self, entry: SubjectEntry, index_keys: Sequence[str]) -> None:
        keys = list(dict.fromkeys(index_keys))
        # A member unique to this write: removing the entries of the subject it replaces
        # (below, or by a concurrent write) can never remove this write's own.
        filed = subject_member(entry.stream_id, entry.key)
        record = dumps({"subject": entry.subject, "excluded": entry.excluded, "index": keys, "member": filed})
        await self._file_subject(filed, keys, add=True)  # before the record: a superset
        stream_keys = [self.keys.stream(entry.stream_id), self.keys.subjects(entry.stream_id)]
        announce = [self.keys.changes_channel, entry.stream_id]
        old = await self._script(lua.PUT_SUBJECT, stream_keys, [entry.key, record, *announce])
        if old is None:
            await self._file_subject(filed, keys, add=False)
            raise ValueError(f"the store rejected the write: stream {entry.stream_id!r} does not exist")
        if old:
            replaced = json.loads(old)
            await self._file_subject(replaced["member"], replaced["index"], add=False)

    @guarded
    async def remove_subject(self, stream_id: str, key: str) -> bool:
        try:
            args = [key, self.keys.changes_channel, stream_id]
            old = await self._script(lua.REMOVE_SUBJECT, [self.keys.subjects(stream_id)], args)
        finally:
            self.cache.changed([stream_id])
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
        for start in range(0, max(len(keys), 1), READ_BATCH):
            commands: list[tuple[Any, ...]] = [
                ("SMEMBERS", self.keys.subject_index(k)) for k in keys[start : start + READ_BATCH]
            ]
            if not start:  # routing asks next; the same slot, so the same round trip
                commands.append(("ZRANGE", self.keys.all_subjects, 0, -1))
            replies = await self._commands(commands)
            if not start:
                _ALL_SUBJECTS_READ.set((time.monotonic(), replies.pop()))
            for found in replies:
                members.update(found)
        out: dict[tuple[str, str], SubjectEntry] = {}
        wanted = []
        for sid, key, filed in sorted((*parse_member(m), m) for m in members):
            kept = self.cache.subject(sid, key, filed)
            if kept is None:
                wanted.append((sid, key, filed))
            else:
                out[sid, key] = kept
        generation = self.cache.generation
        for start in range(0, len(wanted), READ_BATCH):
            batch = wanted[start : start + READ_BATCH]
            records = await self._commands([("HGET", self.keys.subjects(sid), key) for sid, key, _ in batch])
            # The index is a superset: a member counts only if it is the subject's current
            # write (a subject removed or replaced between the two reads is not found).
            for (sid, key, filed), text in zip(batch, records, strict=True):
                if text and json.loads(text).get("member") == filed:
                    out[sid, key] = found = _subject(sid, key, text)
                    self.cache.keep_subject(found, filed, generation)
        return [out[k] for k in sorted(out)]

    @guarded
    async def streams_with_all_subjects(self) -> list[str]:
        read = _ALL_SUBJECTS_READ.get()
        if read is not None and time.monotonic() - read[0] < ALL_SUBJECTS_READ_AGE:
            _ALL_SUBJECTS_READ.set(None)
            candidates = read[1]  # what find_subjects just read for this same event
        else:
            candidates = cast(list[str], await self.client.zrange(self.keys.all_subjects, 0, -1))
        # The index is a superset: each candidate's mode decides, from its record (kept
        # here, or read now).
        modes: dict[str, str | None] = {}
        unknown = []
        for stream_id in candidates:
            kept = self.cache.stream(stream_id)
            if kept is None:
                unknown.append(stream_id)
            else:
                modes[stream_id] = kept.subject_mode.value
        for start in range(0, len(unknown), READ_BATCH):
            batch = unknown[start : start + READ_BATCH]
            async with self.client.pipeline(transaction=False) as pipe:
                for stream_id in batch:
                    pipe.hget(self.keys.stream(stream_id), "mode")
                modes.update(zip(batch, await pipe.execute(), strict=True))
        return [sid for sid in candidates if modes[sid] == SubjectMode.ALL]


def _subject(stream_id: str, key: str, text: str) -> SubjectEntry:
    data = json.loads(text)
    return SubjectEntry(
        stream_id=stream_id, key=key, subject=data["subject"], excluded=bool(data["excluded"])
    )


def _listed(value: Any) -> list[Any]:
    """A list from a Lua script's JSON (cjson writes an empty table as ``{}``)."""
    return value if isinstance(value, list) else []
