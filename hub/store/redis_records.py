"""Receiver-reported errors, the audit trail and the shared key documents on Redis."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast

from hub.core.model import AuditRecord
from hub.store import redis_scripts as lua
from hub.store.redis_engine import guarded
from hub.store.redis_ingest import RedisIngest
from hub.store.redis_queue import dumps

# setErrs come from receivers; keep a bounded, recent window per stream for admins.
SET_ERRORS_KEPT = 1000
# The audit trail is capped so Redis memory stays bounded; the newest records are kept.
AUDIT_KEPT = 100_000
AUDIT_PAGE = 1000
STREAM_AUDIT_KEPT = 10_000


class RedisRecords(RedisIngest):
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
        # Both lists share the {hub} slot, so one script covers them.
        keys, kept = [self.keys.audit()], [AUDIT_KEPT]
        if record.stream_id is not None:
            keys.append(self.keys.audit(record.stream_id))
            kept.append(STREAM_AUDIT_KEPT)
        await self._script(lua.APPEND_AUDIT, keys, [text, *kept])

    @guarded
    async def list_audit(
        self,
        stream_id: str | None = None,
        limit: int = 100,
        *,
        since: float | None = None,
        txn: str | None = None,
        actor: str | None = None,
    ) -> list[AuditRecord]:
        # The lists are capped (AUDIT_KEPT) and newest first: read pages until enough match or
        # a record is older than ``since``.
        out: list[AuditRecord] = []
        start = 0
        while len(out) < limit:
            page = await self.client.lrange(self.keys.audit(stream_id), start, start + AUDIT_PAGE - 1)
            for text in page:
                at, kind, sid, detail = json.loads(text)
                record = AuditRecord(at=at, kind=kind, stream_id=sid, detail=detail)
                if since is not None and record.at < since:
                    return out
                if record.matches(txn=txn, actor=actor):
                    out.append(record)
                    if len(out) >= limit:
                        return out
            if len(page) < AUDIT_PAGE:
                break
            start += AUDIT_PAGE
        return out

    @guarded
    async def prune_audit(self, before: float) -> int:
        """Drop records older than ``before`` from the tail of the global list (newest first);
        the per-stream lists stay capped by count (STREAM_AUDIT_KEPT)."""
        removed = 0
        key = self.keys.audit()
        while True:
            tail = await self.client.lrange(key, -AUDIT_PAGE, -1)
            old = 0
            for text in reversed(tail):
                if json.loads(text)[0] >= before:
                    break
                old += 1
            if not old:
                return removed
            await self.client.ltrim(key, 0, -old - 1)
            removed += old
            if old < len(tail):
                return removed

    # -- key documents (the signing key ring and the token key, shared by replicas) ------------
    @guarded
    async def get_key_document(self, name: str) -> str | None:
        return cast(str | None, await self.client.get(self.keys.key_document(name)))

    @guarded
    async def put_key_document(self, name: str, document: str, *, expected: str | None) -> bool:
        """Store ``document`` if the current one is still ``expected`` (None: if there is none)."""
        args = ("0" if expected is None else "1", expected or "", document)
        return bool(await self._script(lua.COMPARE_AND_SET, [self.keys.key_document(name)], args))
