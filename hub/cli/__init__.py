"""``ssf-hub`` command line: serve, token, emit (the contract in DESIGN.md).

Commands that open the data dir or the store read the same settings as ``serve``
(``--config``, ``SSF_HUB_CONFIG``, ``SSF_HUB_*``, then flags), so a token minted beside a
running hub is one that hub accepts. Commands that call the API take ``--url`` and
``--token`` (or ``--token-file``), or ``SSF_HUB_URL`` and ``SSF_HUB_TOKEN`` /
``SSF_HUB_TOKEN_FILE``, so a token need not appear on the command line (and in ``ps``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from hub import __version__, logs
from hub.auth.tokens import KNOWN_SCOPES
from hub.cli.backup import add_parser as add_backup_parser
from hub.cli.demo import add_parser as add_demo_parser
from hub.cli.issuers import add_emit_arguments, emit_as_issuer
from hub.cli.issuers import add_parser as add_issuers_parser
from hub.cli.upstreams import add_parser as add_upstreams_parser
from hub.config import DEFAULT_DATA_DIR, load_settings
from hub.errors import ConfigError, Unavailable

if TYPE_CHECKING:
    from joserfc.jwk import ECKey

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except _CommandFailed as exc:  # an API call the hub refused or did not answer
        name = " ".join(filter(None, (args.command, getattr(args, "keys_command", None))))
        print(f"ssf-hub {name}: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"ssf-hub: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unavailable as exc:  # e.g. `issuers add --store redis` while Redis is down
        print(f"ssf-hub: {exc.description}", file=sys.stderr)
        return EXIT_USAGE
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssf-hub", description="Shared Signals hub (SSF 1.0, CAEP, RISC)")
    parser.add_argument("--version", action="version", version=f"ssf-hub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub")
    serve.add_argument("--config", help="TOML settings file (also SSF_HUB_CONFIG)")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument(
        "--data-dir", help=f"where keys and the SQLite store live (default ./{DEFAULT_DATA_DIR})"
    )
    serve.add_argument("--store", choices=["sqlite", "redis"], help="storage backend (default sqlite)")
    serve.add_argument("--redis-url", help="redis://host:port/db for --store redis")
    serve.add_argument("--issuer", help="public issuer URL (default http://HOST:PORT)")
    serve.add_argument(
        "--allow-private-endpoints",
        action="store_true",
        default=None,
        help="let push streams target loopback/private addresses over http (development only)",
    )
    serve.add_argument("--log-level", help="critical|error|warning|info|debug (default info)")
    serve.add_argument(
        "--processes",
        type=int,
        help="hub processes behind the one port, to use several cores (default 1; Linux)",
    )
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="print an access token the hub with this data dir accepts")
    token.add_argument("--config", help="TOML settings file (also SSF_HUB_CONFIG), as for serve")
    token.add_argument(
        "--data-dir", help=f"the hub's data dir (SSF_HUB_DATA_DIR; default ./{DEFAULT_DATA_DIR})"
    )
    token.add_argument("--sub", required=True, help="the receiver or operator name (token sub)")
    token.add_argument("--scope", required=True, help=f"space-separated scopes: {', '.join(KNOWN_SCOPES)}")
    token.add_argument("--ttl", type=int, default=300, help="lifetime in seconds (default 300)")
    token.add_argument("--store", choices=["sqlite", "redis"], help="where the hub keeps its token key")
    token.add_argument("--redis-url", help="the hubs' Redis, with --store redis (the key is shared there)")
    token.set_defaults(func=_token)

    emit = sub.add_parser("emit", help="inject one event through the admin API")
    _api_arguments(emit)
    emit.add_argument("--event", required=True, help="short name (session-revoked) or event-type URI")
    emit.add_argument("--subject", required=True, help='subject identifier JSON, e.g. {"format":"email",...}')
    emit.add_argument("--claims", default=None, help="event claims JSON object")
    emit.add_argument("--txn", default=None, help="transaction id to use (default: a new one)")
    emit.add_argument("--json", action="store_true", help='print {"txn", "sets": [{"stream_id","jti"}]}')
    add_emit_arguments(emit)
    emit.set_defaults(func=_emit)

    trace = sub.add_parser("trace", help="where a SET went: by jti, or every SET of a txn")
    trace.add_argument("ident", metavar="JTI", help="a SET's jti or an emit's txn")
    streams = sub.add_parser("streams", help="every stream: status, queue depth, push health")
    for admin_cmd, func in ((trace, _trace), (streams, _streams)):
        _api_arguments(admin_cmd)
        admin_cmd.add_argument("--json", action="store_true", help="print the admin API's JSON")
        admin_cmd.set_defaults(func=func)
    keys = sub.add_parser("keys", help="the hub's signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    rotate = keys.add_parser("rotate", help="rotate the SET signing key now")
    _api_arguments(rotate)
    rotate.add_argument(
        "--retire-now",
        action="store_true",
        help="drop the old key from the JWKS at once (a leaked key); queued SETs are re-signed",
    )
    rotate.set_defaults(func=_rotate_keys)
    audit = sub.add_parser("audit", help="who did what: emits, ingest, status, issuer and key changes")
    _api_arguments(audit)
    audit.add_argument("--since", help="seconds since the epoch or an ISO 8601 time")
    audit.add_argument("--txn", help="one event's transaction id")
    audit.add_argument("--stream-id", help="one stream")
    audit.add_argument("--actor", help="a token sub, an issuer, or hub")
    audit.add_argument("--limit", type=int, default=100, help="newest first, at most this many (1000)")
    audit.add_argument("--json", action="store_true", help="print the admin API's JSON")
    audit.set_defaults(func=_audit)
    add_backup_parser(sub)
    add_demo_parser(sub)
    add_issuers_parser(sub)
    add_upstreams_parser(sub)
    return parser


def _api_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--url", help="the hub's base (issuer) URL (or SSF_HUB_URL)")
    command.add_argument("--token", help="an access token with ssf.admin (or SSF_HUB_TOKEN)")
    command.add_argument("--token-file", help="a file holding that token (or SSF_HUB_TOKEN_FILE)")


def _api(args: argparse.Namespace) -> tuple[str, str]:
    """The base URL and token for an API call, from flags or the environment."""
    url = args.url or os.environ.get("SSF_HUB_URL")
    if not url:
        raise ConfigError("which hub? give --url or set SSF_HUB_URL")
    token = args.token or os.environ.get("SSF_HUB_TOKEN")
    token_file = args.token_file or os.environ.get("SSF_HUB_TOKEN_FILE")
    if not token and token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file}: {exc.strerror}") from None
    if not token:
        raise ConfigError("no access token: give --token or --token-file, or set SSF_HUB_TOKEN")
    return url.rstrip("/"), token


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hub.web.app import create_app
    from hub.web.server import ReadDeadlines, server_config

    overrides = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "store": args.store,
        "redis_url": args.redis_url,
        "issuer": args.issuer,
        "allow_private_endpoints": args.allow_private_endpoints,
        "log_level": args.log_level,
        "processes": args.processes,
    }
    settings = load_settings(config_file=args.config, overrides=overrides)
    if settings.store == "redis" and settings.redis_url:
        asyncio.run(_check_redis(settings.redis_url))
    else:
        _claim_data_dir(Path(settings.data_dir), settings.issuer_url)
    logs.configure(settings.log_level, settings.log_format)
    if settings.processes > 1:
        from hub.cli.processes import serve_processes

        return serve_processes(settings)
    app = create_app(settings)
    # log_config=None: uvicorn keeps to the handler hub.logs set up (one format for every line).
    config = server_config(app, settings, ReadDeadlines.from_settings(settings), log_config=None)
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


_DATA_DIR_LOCK: list[Any] = []  # the open lock file, held for the life of the process


def _claim_data_dir(data_dir: Path, issuer: str) -> None:
    """One ``serve`` per SQLite data dir: a second one would fight the first over the same
    file and leases. The lock dies with the process (kill -9 included)."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / "serve.lock").open("a+", encoding="utf-8")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise ConfigError(
            f"data dir {data_dir} is in use by {holder}; stop it or give another --data-dir"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"ssf-hub serve pid {os.getpid()} at {issuer}\n")
    lock.flush()
    _DATA_DIR_LOCK.append(lock)


async def _check_redis(url: str) -> None:
    """Fail at once, in one line, when the Redis of ``--redis-url`` does not answer."""
    from hub.store.redis import RedisStore

    store = RedisStore(url)
    try:
        await store.open()
    except Unavailable as exc:
        raise ConfigError(exc.description) from None
    finally:
        await store.close()


async def _redis_token_key(url: str) -> ECKey:
    from hub.keys.storage import SharedKeyStorage
    from hub.store.redis import RedisStore

    store = RedisStore(url)
    try:
        await store.open()
        return await SharedKeyStorage(store).token_key()
    except Unavailable as exc:
        raise ConfigError(exc.description) from None
    finally:
        await store.close()


def _token(args: argparse.Namespace) -> int:
    from hub.auth.tokens import mint_local_token
    from hub.keys.ring import load_or_create_token_key

    if args.ttl <= 0:
        raise ConfigError("--ttl must be a positive number of seconds")
    if not args.sub.strip():
        raise ConfigError("--sub must not be empty")
    unknown = [s for s in args.scope.split() if s not in KNOWN_SCOPES]
    if unknown or not args.scope.split():
        raise ConfigError(
            f"unknown scope {' '.join(unknown) or '(none)'!r}; known: {', '.join(KNOWN_SCOPES)}"
        )
    if args.store == "redis" and not (args.redis_url or os.environ.get("SSF_HUB_REDIS_URL") or args.config):
        raise ConfigError("--store redis needs --redis-url redis://HOST:PORT/DB (or SSF_HUB_REDIS_URL)")
    overrides = {"data_dir": args.data_dir, "store": args.store, "redis_url": args.redis_url}
    settings = load_settings(config_file=args.config, overrides=overrides)
    if settings.store == "redis":
        assert settings.redis_url is not None  # load_settings requires it with store=redis
        key = asyncio.run(_redis_token_key(settings.redis_url))
    else:
        key = load_or_create_token_key(Path(settings.data_dir))
    print(mint_local_token(key, sub=args.sub, scope=args.scope, ttl=args.ttl, now=time.time()))
    return 0


def _emit(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"event": args.event, "subject": _json_arg("--subject", args.subject)}
    if args.claims is not None:
        body["claims"] = _json_arg("--claims", args.claims)
    if args.as_issuer:
        return emit_as_issuer(args, body["subject"], body.get("claims"))
    if args.txn is not None:
        body["txn"] = args.txn
    data = _admin_call(args, "/ssf/admin/events", body=body)
    if args.json:
        print(json.dumps({"txn": data["txn"], "sets": data["sets"]}))
    else:
        print(data["txn"])  # stdout holds the txn alone: scripts read it
    reached = len(data["sets"])
    if reached:
        print(f"ssf-hub emit: queued for {reached} stream(s)", file=sys.stderr)
    else:
        dropped = len(data.get("dropped_streams", []))
        why = (
            f"{dropped} matching stream(s) are disabled"
            if dropped
            else "no stream has this subject and event"
        )
        print(f"ssf-hub emit: warning: the event reached no stream ({why})", file=sys.stderr)
    return 0


def _admin_call(args: argparse.Namespace, path: str, *, body: Any = None) -> Any:
    """GET ``path`` (POST ``body`` when given) on the hub the arguments name; the JSON answer,
    or :class:`_CommandFailed` with the hub's ``err`` and description."""
    base, token = _api(args)
    url = base + path
    method = "GET" if body is None else "POST"
    try:
        response = httpx.request(
            method, url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
    except httpx.HTTPError as exc:
        raise _CommandFailed(f"cannot reach {url}: {exc}") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200:
        err = data.get("err", "error") if isinstance(data, dict) else "error"
        desc = data.get("description", "") if isinstance(data, dict) else response.text[:200]
        raise _CommandFailed(f"{response.status_code} {err}: {desc}")
    return data


class _CommandFailed(Exception):
    pass


def _when(at: float | None) -> str:
    return (
        "-"
        if at is None
        else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
    )


def _trace(args: argparse.Namespace) -> int:
    data = _admin_call(args, f"/ssf/admin/trace/{args.ident}")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for record in data.get("audit", []):
        source = "emitted by" if record["kind"] == "event_emitted" else "ingested from"
        print(
            f"txn {record['txn']}  {record['event']}  {source} {record.get('actor', '-')} at "
            f"{_when(record['at'])}: {record['streams']} stream(s)"
        )
    for item in data["sets"]:
        print(f"stream {item['stream_id']}  jti {item['jti']}  txn {item['txn'] or '-'}")
        print(f"  event   {item['event_type']}")
        print(f"  queued  {_when(item['queued_at'])}   state {item['state']}   done {_when(item['done_at'])}")
        for n, a in enumerate(item["attempts"], 1):
            result = a["status"] if a["status"] is not None else a["error"]
            print(f"  #{n:<3} {_when(a['at'])}  {a['outcome']:<10} {result}  {a['latency_ms']:.1f} ms")
        if item["last_error"] and item["state"] == "pending":
            print(f"  last error: {item['last_error']}")
        _print_receipts(item)
    return 0


def _print_receipts(item: dict[str, Any]) -> None:
    """What the receiver reported doing with the SET (remediation receipts, issue #14)."""
    receipts = item.get("receipts", [])
    if item["state"] == "delivered" and not receipts:
        print("  receipt delivered, no receipt")
    for r in receipts:
        print(f"  receipt {_when(r['at'])}  {r['action']:<16} x{r['count']}")


def _streams(args: argparse.Namespace) -> int:
    data = _admin_call(args, "/ssf/admin/streams")
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    row = "{:<24} {:<16} {:<6} {:<9} {:>6} {:>8}  {}"
    print(
        row.format("STREAM", "OWNER", "METHOD", "STATUS", "QUEUED", "OLDEST", "LAST SEEN / SUCCESS / ERROR")
    )
    for s in data:
        push = s["delivery"]["method"].endswith("8935")
        age = "-" if s["oldest_undelivered_age"] is None else f"{s['oldest_undelivered_age']:.0f}s"
        if push:  # the hub's own delivery: when it last got a 2xx
            note = "pushed " + _when(s["last_success_at"]) if s["last_success_at"] else "never delivered"
        else:  # a poller's: when the receiver last called (to the minute)
            note = "polled " + _when(s.get("last_seen_at")) if s.get("last_seen_at") else "never polled"
        if s["last_error"]:
            note += f" / {s['last_error']}"
        if s.get("next_retry_at"):
            note += f" / next retry {_when(s['next_retry_at'])}"
        if s["status"] != "enabled" and s.get("status_reason"):
            note += f" / {s['status']}: {s['status_reason']}"
        method = "push" if push else "poll"
        print(row.format(s["stream_id"], s["owner"][:16], method, s["status"], s["queued"], age, note))
    return 0


def _rotate_keys(args: argparse.Namespace) -> int:
    data = _admin_call(args, "/ssf/admin/keys/rotate", body={"retire_now": args.retire_now})
    print(data["active_kid"])
    kids = [k["kid"] for k in data["jwks"]["keys"]]
    print(
        f"ssf-hub keys rotate: active key {data['active_kid']}; published: {', '.join(kids)}", file=sys.stderr
    )
    return 0


def _audit(args: argparse.Namespace) -> int:
    query = {"since": args.since, "txn": args.txn, "stream_id": args.stream_id, "actor": args.actor}
    params = {k: v for k, v in query.items() if v is not None} | {"limit": str(args.limit)}
    data = _admin_call(args, "/ssf/admin/audit?" + urlencode(params))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for record in data["records"]:
        fields = {k: v for k, v in record.items() if k not in ("at", "kind", "stream_id", "actor")}
        where = f" stream {record['stream_id']}" if record["stream_id"] else ""
        detail = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in fields.items())
        print(f"{_when(record['at'])}  {record['kind']:<16} by {record.get('actor', '-')}{where}  {detail}")
    return 0


def _json_arg(flag: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} is not valid JSON: {exc}") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
