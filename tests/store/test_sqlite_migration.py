"""A SQLite file written by an older hub is migrated forward on open, its data kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.core.issuers import TrustedIssuer
from hub.core.model import IngestReceipt
from hub.store import SQLiteStore, sqlite_engine


def version_1_file(path: Path) -> None:
    """A file as the first release left it: schema version 1 with one stream in it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(f"BEGIN;{sqlite_engine._MIGRATIONS[0]}PRAGMA user_version = 1;COMMIT;")
    conn.execute(
        "INSERT INTO streams (stream_id, owner, subject_mode, created_at, record) VALUES (?, ?, ?, ?, ?)",
        ("s-old", "alice", "NONE", 1.0, "{}"),
    )
    conn.close()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


async def test_a_version_1_file_is_migrated_to_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    version_1_file(path)

    store = SQLiteStore(path)
    await store.open()
    try:
        assert user_version(path) == sqlite_engine.SCHEMA_VERSION
        # Version 2's tables work, and the stream written before the upgrade is still there.
        await store.put_issuer(TrustedIssuer(iss="https://idp.example", jwks_uri="https://idp.example/jwks"))
        assert [i.iss for i in await store.list_issuers()] == ["https://idp.example"]
        assert await store.ingest(IngestReceipt("https://idp.example", "j", 1.0, 2.0), []) is True
        assert await store.streams_with_all_subjects() == []
        assert await store.list_subjects("s-old") == []
        conn = sqlite3.connect(path)
        assert conn.execute("SELECT stream_id FROM streams").fetchall() == [("s-old",)]
        conn.close()
    finally:
        await store.close()


async def test_reopening_a_current_file_runs_no_migration(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    first = SQLiteStore(path)
    await first.open()
    await first.put_issuer(TrustedIssuer(iss="https://idp.example", jwks_uri="https://idp.example/jwks"))
    await first.close()

    second = SQLiteStore(path)
    await second.open()
    try:
        assert user_version(path) == sqlite_engine.SCHEMA_VERSION
        assert len(await second.list_issuers()) == 1
    finally:
        await second.close()
