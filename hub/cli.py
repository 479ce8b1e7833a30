"""``ssf-hub`` command line: serve, token, emit (the contract in DESIGN.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from hub import __version__
from hub.config import DEFAULT_DATA_DIR, load_settings
from hub.errors import ConfigError, Unavailable
from hub.ingest.commands import add_emit_arguments, emit_as_issuer
from hub.ingest.commands import add_parser as add_issuers_parser
from hub.upstreams.commands import add_parser as add_upstreams_parser

if TYPE_CHECKING:
    from joserfc.jwk import ECKey

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
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
    serve.set_defaults(func=_serve)

    token = sub.add_parser("token", help="print an access token the hub with this data dir accepts")
    token.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    token.add_argument("--sub", required=True, help="the receiver or operator name (token sub)")
    token.add_argument("--scope", required=True, help='space-separated scopes, e.g. "ssf.manage"')
    token.add_argument("--ttl", type=int, default=300, help="lifetime in seconds (default 300)")
    token.add_argument(
        "--store", choices=["sqlite", "redis"], default="sqlite", help="where the hub keeps its token key"
    )
    token.add_argument("--redis-url", help="the hubs' Redis, with --store redis (the key is shared there)")
    token.set_defaults(func=_token)

    emit = sub.add_parser("emit", help="inject one event through the admin API")
    emit.add_argument("--url", required=True, help="the hub's base (issuer) URL")
    emit.add_argument("--token", required=True, help="an access token with ssf.admin")
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
        admin_cmd.add_argument("--url", required=True, help="the hub's base (issuer) URL")
        admin_cmd.add_argument("--token", required=True, help="an access token with ssf.admin")
        admin_cmd.add_argument("--json", action="store_true", help="print the admin API's JSON")
        admin_cmd.set_defaults(func=func)
    add_issuers_parser(sub)
    add_upstreams_parser(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from hub.web.app import create_app

    overrides = {
        "host": args.host,
        "port": args.port,
        "data_dir": args.data_dir,
        "store": args.store,
        "redis_url": args.redis_url,
        "issuer": args.issuer,
        "allow_private_endpoints": args.allow_private_endpoints,
        "log_level": args.log_level,
    }
    settings = load_settings(config_file=args.config, overrides=overrides)
    if settings.store == "redis" and settings.redis_url:
        asyncio.run(_check_redis(settings.redis_url))
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,  # ~47 µs per request; off by default (research/perf.md §2b)
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


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
    from hub.key_storage import SharedKeyStorage
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
    from hub.access import mint_local_token
    from hub.keys import load_or_create_token_key

    if args.ttl <= 0:
        raise ConfigError("--ttl must be a positive number of seconds")
    if not args.sub.strip():
        raise ConfigError("--sub must not be empty")
    if args.store == "redis":
        if not args.redis_url:
            raise ConfigError("--store redis needs --redis-url redis://HOST:PORT/DB")
        key = asyncio.run(_redis_token_key(args.redis_url))
    else:
        key = load_or_create_token_key(Path(args.data_dir))
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
    url = args.url.rstrip("/") + "/ssf/admin/events"
    try:
        response = httpx.post(url, json=body, headers={"Authorization": f"Bearer {args.token}"}, timeout=30)
    except httpx.HTTPError as exc:
        print(f"ssf-hub emit: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code != 200:
        err = data.get("err", "error") if isinstance(data, dict) else "error"
        desc = data.get("description", response.text[:200]) if isinstance(data, dict) else response.text[:200]
        print(f"ssf-hub emit: {response.status_code} {err}: {desc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"txn": data["txn"], "sets": data["sets"]}))
    else:
        print(data["txn"])
    return 0


def _admin_get(args: argparse.Namespace, path: str) -> Any:
    url = args.url.rstrip("/") + path
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {args.token}"}, timeout=30)
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
    try:
        data = _admin_get(args, f"/ssf/admin/trace/{args.ident}")
    except _CommandFailed as exc:
        print(f"ssf-hub trace: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for item in data["sets"]:
        print(f"stream {item['stream_id']}  jti {item['jti']}  txn {item['txn'] or '-'}")
        print(f"  event   {item['event_type']}")
        print(f"  queued  {_when(item['queued_at'])}   state {item['state']}   done {_when(item['done_at'])}")
        for n, a in enumerate(item["attempts"], 1):
            result = a["status"] if a["status"] is not None else a["error"]
            print(f"  #{n:<3} {_when(a['at'])}  {a['outcome']:<10} {result}  {a['latency_ms']:.1f} ms")
        if item["last_error"] and item["state"] == "pending":
            print(f"  last error: {item['last_error']}")
    return 0


def _streams(args: argparse.Namespace) -> int:
    try:
        data = _admin_get(args, "/ssf/admin/streams")
    except _CommandFailed as exc:
        print(f"ssf-hub streams: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    row = "{:<24} {:<16} {:<6} {:<9} {:>6} {:>8}  {}"
    print(row.format("STREAM", "OWNER", "METHOD", "STATUS", "QUEUED", "OLDEST", "LAST SUCCESS / LAST ERROR"))
    for s in data:
        method = "push" if s["delivery"]["method"].endswith("8935") else "poll"
        age = "-" if s["oldest_undelivered_age"] is None else f"{s['oldest_undelivered_age']:.0f}s"
        note = _when(s["last_success_at"]) if s["last_success_at"] else "-"
        if s["last_error"]:
            note += f" / {s['last_error']}"
        print(row.format(s["stream_id"], s["owner"][:16], method, s["status"], s["queued"], age, note))
    return 0


def _json_arg(flag: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag} is not valid JSON: {exc}") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
