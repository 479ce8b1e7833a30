"""``ssf-hub backup FILE``: a consistent snapshot of a SQLite hub that ``serve`` can start from.

The store is copied with SQLite's online backup API (consistent while a hub serves from it,
WAL included) and the key files beside it, into one ``.tar.gz``:

    ssf-hub backup hub-2026-12-05.tar.gz            # reads the same settings as serve
    mkdir /srv/hub-restored && tar -xzf hub-2026-12-05.tar.gz -C /srv/hub-restored
    ssf-hub serve --data-dir /srv/hub-restored      # same streams, queues, keys and tokens

With ``store = redis`` the streams, queues and keys live in Redis: back up Redis itself (its
AOF or RDB files), which this command says in one line.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hub.config import load_settings
from hub.errors import ConfigError
from hub.keys.ring import keys_dir

STORE_FILE = "hub.sqlite3"


def add_parser(sub: Any) -> None:
    backup = sub.add_parser("backup", help="a consistent snapshot of the store and keys (SQLite)")
    backup.add_argument("file", metavar="FILE", help="the .tar.gz to write (mode 0600)")
    backup.add_argument("--config", help="TOML settings file (also SSF_HUB_CONFIG), as for serve")
    backup.add_argument("--data-dir", help="the hub's data dir (SSF_HUB_DATA_DIR)")
    backup.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(config_file=args.config, overrides={"data_dir": args.data_dir})
    if settings.store != "sqlite":
        raise ConfigError("with store=redis the streams, queues and keys live in Redis: back up Redis itself")
    data_dir = Path(settings.data_dir)
    database = data_dir / STORE_FILE
    if not database.exists():
        raise ConfigError(f"no hub store at {database}")
    written = write_backup(data_dir, Path(args.file))
    print(f"ssf-hub backup: wrote {written} ({STORE_FILE} and keys/ of {data_dir})")
    return 0


def write_backup(data_dir: Path, target: Path) -> Path:
    """Snapshot ``data_dir`` into ``target`` (a .tar.gz readable by its owner only)."""
    with tempfile.TemporaryDirectory(prefix="ssf-hub-backup-") as tmp:
        copy = Path(tmp) / STORE_FILE
        source = sqlite3.connect(data_dir / STORE_FILE)
        try:
            destination = sqlite3.connect(copy)
            try:
                source.backup(destination)  # consistent even while a hub writes
            finally:
                destination.close()
        finally:
            source.close()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the private keys
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            archive.add(copy, arcname=STORE_FILE)
            archive.add(keys_dir(data_dir), arcname="keys")
    return target
