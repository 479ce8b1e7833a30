"""``ssf-hub issuers add | list | remove`` and ``ssf-hub emit --as-issuer``.

The issuer commands write to the hub's store directly (like ``ssf-hub token``, no running hub
needed, the data dir created when missing); a running hub sees the change within a second
(:class:`~hub.ingest.registry.IssuerRegistry`). ``emit --as-issuer ISS --key FILE`` signs a SET
as that upstream issuer and pushes it through ``/ssf/ingest``, to prove the whole path
IdP → hub → agent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, TypeVar

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key

from hub.cli.store import with_store
from hub.config import DEFAULT_DATA_DIR
from hub.core.discovery import INGEST_PATH
from hub.core.events import resolve_event_type
from hub.core.issuers import ALLOWED_ALGORITHMS
from hub.core.secevent import SET_MEDIA_TYPE, SET_TYP
from hub.core.subjects import validate_subject
from hub.errors import ConfigError, HubError
from hub.ingest.registry import parse_registration

T = TypeVar("T")


def add_parser(sub: Any) -> None:
    """Register ``issuers`` on the ``ssf-hub`` sub-command parser."""
    issuers = sub.add_parser("issuers", help="upstream issuers whose SETs /ssf/ingest accepts")
    actions = issuers.add_subparsers(dest="action", required=True)

    add = actions.add_parser("add", help="trust an upstream issuer (replaces one with the same iss)")
    add.add_argument("--iss", required=True, help="the issuer's iss claim value")
    keys = add.add_mutually_exclusive_group(required=True)
    keys.add_argument("--jwks-uri", help="where its signing keys are published (https; http for loopback)")
    keys.add_argument("--jwks-file", help="a JWK Set file with its public keys (pinned)")
    add.add_argument(
        "--alg",
        action="append",
        choices=ALLOWED_ALGORITHMS,
        help="an algorithm it signs with (repeat; default RS256 and ES256)",
    )
    add.add_argument("--event-type", action="append", help="only accept this event type from it (repeat)")
    add.add_argument(
        "--subject-pattern",
        action="append",
        help="only accept subjects matching FORMAT:GLOB, e.g. email:*@example.com (repeat)",
    )
    add.add_argument(
        "--strict",
        action="store_true",
        help="refuse a SET whose optional event claims do not fit (default: repair and accept)",
    )
    add.set_defaults(func=_add)

    listing = actions.add_parser("list", help="every trusted issuer")
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    listing.set_defaults(func=_list)

    remove = actions.add_parser("remove", help="stop trusting an issuer")
    remove.add_argument("--iss", required=True, help="the issuer's iss")
    remove.set_defaults(func=_remove)

    for action in (add, listing, remove):
        action.add_argument("--data-dir", help=f"the hub's data dir (default ./{DEFAULT_DATA_DIR})")
        action.add_argument("--config", help="TOML settings file (also SSF_HUB_CONFIG)")
        action.add_argument("--store", choices=["sqlite", "redis"], help="storage backend (default sqlite)")
        action.add_argument("--redis-url", help="redis://host:port/db for --store redis")


def add_emit_arguments(emit: argparse.ArgumentParser) -> None:
    """The ``emit`` flags that make it an upstream issuer pushing to ``/ssf/ingest``."""
    emit.add_argument(
        "--as-issuer", metavar="ISS", help="sign the SET as this upstream issuer and push it in"
    )
    emit.add_argument("--key", metavar="FILE", help="with --as-issuer: its private key (JWK or PEM)")
    emit.add_argument("--alg", choices=ALLOWED_ALGORITHMS, help="with --as-issuer: default from the key")


# -- issuers --------------------------------------------------------------------------------------


def _registration(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"iss": args.iss}
    if args.jwks_uri:
        body["jwks_uri"] = args.jwks_uri
    else:
        try:
            body["jwks"] = json.loads(Path(args.jwks_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--jwks-file {args.jwks_file}: {exc}") from None
    for flag, name in (
        ("alg", "algorithms"),
        ("event_type", "event_types"),
        ("subject_pattern", "subject_patterns"),
    ):
        if getattr(args, flag):
            body[name] = getattr(args, flag)
    if args.strict:
        body["strict"] = True
    return body


def _add(args: argparse.Namespace) -> int:
    try:
        issuer = parse_registration(_registration(args), now=time.time())
        with_store(args, lambda store: store.put_issuer(issuer))
    except HubError as exc:
        return _fail("issuers add", exc.description)
    print(issuer.iss)
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        found = with_store(args, lambda store: store.list_issuers())
    except HubError as exc:
        return _fail("issuers list", exc.description)
    if args.json:
        print(json.dumps([issuer.public_view() for issuer in found], indent=2))
        return 0
    row = "{:<40} {:<16} {:<10} {}"
    print(row.format("ISSUER", "ALGORITHMS", "LIMITS", "KEYS"))
    for issuer in found:
        limits = "+".join(
            name
            for name, value in (("events", issuer.event_types), ("subjects", issuer.subject_patterns))
            if value is not None
        )
        if issuer.strict:
            limits = f"{limits}+strict" if limits else "strict"
        keys = issuer.jwks_uri or f"inline ({len(issuer.jwks.get('keys', [])) if issuer.jwks else 0} keys)"
        print(row.format(issuer.iss, ",".join(issuer.algorithms), limits or "-", keys))
    return 0


def _remove(args: argparse.Namespace) -> int:
    try:
        removed = with_store(args, lambda store: store.remove_issuer(args.iss))
    except HubError as exc:
        return _fail("issuers remove", exc.description)
    if not removed:
        return _fail("issuers remove", f"no trusted issuer {args.iss}")
    return 0


# -- emit --as-issuer ---------------------------------------------------------------------------------


def emit_as_issuer(args: argparse.Namespace, subject: Any, claims: Any) -> int:
    """Sign one SET as ``--as-issuer`` and push it to the hub's ``/ssf/ingest``; prints its jti."""
    if not args.key:
        raise ConfigError("--as-issuer needs --key FILE (the issuer's private key, JWK or PEM)")
    key = load_private_key(Path(args.key))
    alg = args.alg or default_alg(key)
    try:
        event = resolve_event_type(args.event)
        sub_id = validate_subject(subject)
    except HubError as exc:
        raise ConfigError(exc.description) from None
    if claims is None:
        claims = {}
    if not isinstance(claims, dict):
        raise ConfigError("--claims must be a JSON object")
    now = int(time.time())
    claims.setdefault("event_timestamp", now)
    jti = uuid.uuid4().hex
    hub_url = args.url.rstrip("/")
    payload: dict[str, Any] = {"iss": args.as_issuer, "jti": jti, "iat": now, "aud": hub_url}
    if args.txn:
        payload["txn"] = args.txn
    payload.update(sub_id=sub_id, events={event.uri: claims})
    token = sign_set(payload, key, alg)
    url = hub_url + INGEST_PATH
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": SET_MEDIA_TYPE}
    try:
        response = httpx.post(url, content=token, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        return _fail("emit", f"cannot reach {url}: {exc}")
    if response.status_code != 202:
        try:
            data = response.json()
        except ValueError:
            data = {}
        err = data.get("err", "error") if isinstance(data, dict) else "error"
        desc = data.get("description", response.text[:200]) if isinstance(data, dict) else response.text[:200]
        return _fail("emit", f"{response.status_code} {err}: {desc}")
    if args.json:
        print(json.dumps({"iss": args.as_issuer, "jti": jti, "txn": args.txn or jti}))
    else:
        print(jti)
    return 0


def load_private_key(path: Path) -> Key:
    """A private signing key from a JWK (JSON) or PEM file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--key {path}: {exc}") from None
    try:
        if data.lstrip().startswith(b"{"):
            key = import_key(json.loads(data))
        else:
            key = _import_pem(data)
    except (JoseError, ValueError, TypeError) as exc:
        raise ConfigError(f"--key {path}: not a private JWK or PEM key ({exc})") from None
    if not key.is_private:
        raise ConfigError(f"--key {path}: a public key cannot sign")
    return key


def _import_pem(data: bytes) -> Key:
    for kind in (RSAKey, ECKey, OKPKey):
        try:
            return kind.import_key(data)
        except (JoseError, ValueError, TypeError):
            continue
    raise ValueError("unsupported PEM key")


def default_alg(key: Key) -> str:
    alg = key.get("alg") if isinstance(key.get("alg"), str) else None
    if alg:
        return str(alg)
    if isinstance(key, RSAKey):
        return "RS256"
    if isinstance(key, ECKey):
        return "ES256"
    if isinstance(key, OKPKey):
        return "EdDSA"
    raise ConfigError("cannot tell the key's algorithm; pass --alg")


def sign_set(payload: dict[str, Any], key: Key, alg: str) -> str:
    header: dict[str, Any] = {"alg": alg, "typ": SET_TYP}
    if key.kid:
        header["kid"] = key.kid
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated")
        try:
            return jws.serialize_compact(header, json.dumps(payload).encode(), key, algorithms=[alg])
        except (JoseError, ValueError) as exc:
            raise ConfigError(f"cannot sign with {alg} and this key: {exc}") from None


def _fail(command: str, message: str) -> int:
    print(f"ssf-hub {command}: {message}", file=sys.stderr)
    return 1
