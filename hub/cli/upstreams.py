"""``ssf-hub upstreams add | list | remove``: upstream subscriptions, written to the hub's store.

Like ``ssf-hub token`` these work on the data dir (or the store the settings name), so they
need no running hub; a running hub picks the change up within ``upstream_reload_interval``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

from hub.cli.store import with_store
from hub.config import DEFAULT_DATA_DIR
from hub.core.upstreams import Health, Upstream
from hub.errors import HubError, InvalidRequest
from hub.upstreams.configuration import add_upstream, remove_upstream

T = TypeVar("T")


def add_parser(sub: Any) -> None:
    """Register ``upstreams`` on the ``ssf-hub`` sub-command parser."""
    upstreams = sub.add_parser("upstreams", help="subscriptions to upstream SSF transmitters (IdPs)")
    actions = upstreams.add_subparsers(dest="action", required=True)

    add = actions.add_parser("add", help="subscribe to an upstream transmitter")
    add.add_argument("--config-url", required=True, help="its issuer URL or .well-known configuration URL")
    add.add_argument(
        "--token-source",
        required=True,
        choices=["client-credentials", "bearer"],
        help="client-credentials: OAuth with a private_key_jwt client assertion (RFC 7523); "
        "bearer: a fixed access token (development)",
    )
    add.add_argument("--token-endpoint", help="client-credentials: the OAuth token endpoint")
    add.add_argument("--client-id", help="client-credentials: the hub's client id there")
    add.add_argument("--private-key", help="client-credentials: PEM or JWK file signing the assertion")
    add.add_argument("--scope", help="client-credentials: scope to ask for")
    add.add_argument("--audience", help="client-credentials: audience parameter, if the IdP wants one")
    add.add_argument("--bearer-token", help="bearer: the access token")
    add.add_argument(
        "--delivery",
        choices=["push", "poll", "auto"],
        default="auto",
        help="default auto: the one method the transmitter lists, poll when it lists both",
    )
    add.add_argument(
        "--events",
        help="comma-separated event names or URIs (default: the revocation-relevant CAEP/RISC events "
        "the transmitter supports)",
    )
    add.add_argument("--name", help="the upstream's id (default: the transmitter's host name)")
    add.add_argument("--description", help="free text for operators")
    compat = add.add_argument_group("compatibility options (for transmitters that deviate from SSF 1.0)")
    compat.add_argument(
        "--expected-issuer", help="accept metadata whose issuer is this URL, not the one it is served from"
    )
    compat.add_argument(
        "--create-field",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a member to send on every stream write, e.g. aud=https://hub.example.com (repeatable; "
        'a VALUE that is a JSON array or object, such as ["a","b"], is sent as JSON)',
    )
    compat.add_argument(
        "--omit-field",
        action="append",
        default=[],
        choices=["description", "events_requested"],
        help="a receiver member not to send (repeatable)",
    )
    compat.add_argument(
        "--renewal",
        choices=["patch", "replace", "recreate"],
        help="how the push token is renewed: PATCH (default), PUT of the whole stream, or delete + create",
    )
    compat.add_argument(
        "--push-auth",
        choices=["authorization_header", "endpoint_url_token"],
        help="where a push stream's token goes: delivery.authorization_header (default) or "
        "delivery.endpoint_url_token",
    )
    add.set_defaults(func=_add)

    listing = actions.add_parser("list", help="every upstream with its health and last event")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    listing.set_defaults(func=_list)

    remove = actions.add_parser("remove", help="unsubscribe (the hub deletes its stream there)")
    remove.add_argument("name", metavar="ID", help="the upstream's id (see upstreams list)")
    remove.set_defaults(func=_remove)

    for action in (add, listing, remove):
        action.add_argument("--data-dir", help=f"the hub's data dir (default ./{DEFAULT_DATA_DIR})")
        action.add_argument("--config", help="TOML settings file (also SSF_HUB_CONFIG)")
        action.add_argument("--store", choices=["sqlite", "redis"], help="storage backend (default sqlite)")
        action.add_argument("--redis-url", help="redis://host:port/db for --store redis")


def _request(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"config_url": args.config_url, "delivery": args.delivery}
    if args.token_source == "bearer":
        body["token_source"] = {"type": "bearer", "token": args.bearer_token}
    else:
        body["token_source"] = {
            "type": "client_credentials",
            "token_endpoint": args.token_endpoint,
            "client_id": args.client_id,
            # The hub reads the file when it connects, maybe from another directory.
            "private_key_file": str(Path(args.private_key).resolve()) if args.private_key else None,
            **{k: v for k, v in (("scope", args.scope), ("audience", args.audience)) if v},
        }
    if args.events:
        body["events_requested"] = [e.strip() for e in args.events.split(",") if e.strip()]
    if args.name:
        body["upstream_id"] = args.name
    if args.description:
        body["description"] = args.description
    compat = _compatibility(args)
    if compat:
        body["compatibility"] = compat
    return body


def _compatibility(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.expected_issuer:
        out["expected_issuer"] = args.expected_issuer
    if args.create_field:
        out["create_fields"] = dict(_field(item) for item in args.create_field)
    if args.omit_field:
        out["omit_fields"] = args.omit_field
    if args.renewal:
        out["renewal"] = args.renewal
    if args.push_auth:
        out["push_auth"] = args.push_auth
    return out


def _field(item: str) -> tuple[str, Any]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise InvalidRequest(f"--create-field {item!r}: give NAME=VALUE")
    try:
        parsed = json.loads(value)
    except ValueError:
        return name, value
    # A JSON array or object is meant as one; a number or word stays the text typed.
    return name, parsed if isinstance(parsed, list | dict) else value


def _add(args: argparse.Namespace) -> int:
    if args.token_source == "bearer" and not args.bearer_token:
        return _fail("add", "--token-source bearer needs --bearer-token")
    if args.token_source == "client-credentials" and not (
        args.token_endpoint and args.client_id and args.private_key
    ):
        return _fail(
            "add", "--token-source client-credentials needs --token-endpoint, --client-id, --private-key"
        )
    try:
        body = _request(args)
        upstream = with_store(args, lambda store: add_upstream(store, body, now=time.time()))
    except HubError as exc:
        return _fail("add", exc.description)
    print(upstream.upstream_id)
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        found = with_store(args, lambda store: store.list_upstreams())
    except HubError as exc:
        return _fail("list", exc.description)
    if args.json:
        print(json.dumps([u.public_view() for u in found], indent=2))
        return 0
    row = "{:<20} {:<5} {:<10} {:<9} {:<24} {:<20} {}"
    print(row.format("UPSTREAM", "MODE", "HEALTH", "STATUS", "LAST EVENT", "STREAM", "ISSUER / LAST ERROR"))
    for upstream in found:
        print(row.format(*_columns(upstream)))
    return 0


def _columns(upstream: Upstream) -> tuple[str, ...]:
    state = upstream.state
    note = state.issuer or upstream.config_url
    recent = state.last_error_at is not None and (
        state.verified_at is None or state.last_error_at >= state.verified_at
    )
    if state.last_error and (recent or state.health is Health.DEGRADED):
        note += f" / {state.last_error}"  # an error before the last good verification is history
    mode = upstream.delivery.value if upstream.delivery is not None else (state.delivery or "auto")
    return (
        upstream.upstream_id,
        mode,
        state.health.value,
        state.remote_status or "-",
        _when(state.last_event_at),
        state.stream_id or "-",
        note,
    )


def _remove(args: argparse.Namespace) -> int:
    try:
        with_store(args, lambda store: remove_upstream(store, args.name))
    except HubError as exc:
        return _fail("remove", exc.description)
    return 0


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def _fail(action: str, message: str) -> int:
    print(f"ssf-hub upstreams {action}: {message}", file=sys.stderr)
    return 1
