"""Upstream subscriptions on SQLite: configuration and state in two columns of one row."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from hub.core.upstreams import Upstream, UpstreamState
from hub.store.sealing import open_upstream, seal_upstream
from hub.store.sqlite_engine import SQLiteEngine, dumps


class SQLiteUpstreams(SQLiteEngine):
    def _upstream(self, row: Sequence[Any]) -> Upstream:
        return Upstream.from_records(open_upstream(json.loads(row[0]), self.sealer), json.loads(row[1]))

    async def add_upstream(self, upstream: Upstream) -> bool:
        row = (
            upstream.upstream_id,
            upstream.created_at,
            dumps(seal_upstream(upstream.config_record(), self.sealer)),
            dumps(upstream.state.to_record()),
        )

        def tx(conn: sqlite3.Connection) -> bool:
            sql = (
                "INSERT INTO upstreams (upstream_id, created_at, config, state) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (upstream_id) DO NOTHING"
            )
            return conn.execute(sql, row).rowcount > 0

        return await self._call(tx, write=True)

    async def get_upstream(self, upstream_id: str) -> Upstream | None:
        rows = await self._fetch("SELECT config, state FROM upstreams WHERE upstream_id = ?", (upstream_id,))
        return self._upstream(rows[0]) if rows else None

    async def list_upstreams(self) -> list[Upstream]:
        rows = await self._fetch("SELECT config, state FROM upstreams ORDER BY created_at, upstream_id")
        return [self._upstream(row) for row in rows]

    async def remove_upstream(self, upstream_id: str) -> bool:
        return await self._change("DELETE FROM upstreams WHERE upstream_id = ?", (upstream_id,)) > 0

    async def save_upstream_state(self, upstream_id: str, state: UpstreamState) -> bool:
        sql = "UPDATE upstreams SET state = ? WHERE upstream_id = ?"
        return await self._change(sql, (dumps(state.to_record()), upstream_id)) > 0
