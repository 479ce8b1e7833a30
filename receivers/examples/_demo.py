"""What the three examples share: a development identity provider, hub credentials, subscribing.

Development only. :class:`DevIdentityProvider` keeps an ES256 key in ``.ssf-demo/idp.json``
(mode 0600) so the agent (which mints tokens) and the tool server / gateway (which verify
them) agree without a real IdP; in production the tokens come from your authorization
server and the services verify them with a :class:`~receivers.JwksCache` on its JWKS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, import_key

from receivers import (
    AnyIdentity,
    BearerJwtIdentity,
    ContinuousAccess,
    Hub,
    JwtVerifier,
    Subscription,
    TxnTokenIdentity,
)
from receivers.errors import TokenError
from receivers.events import (
    CREDENTIAL_CHANGE,
    DEVICE_COMPLIANCE_CHANGE,
    RISK_LEVEL_CHANGE,
    SESSION_REVOKED,
    TOKEN_CLAIMS_CHANGE,
)
from receivers.jwks import StaticKeys

DEV_ISSUER = "https://idp.ssf-demo.invalid"
TOOLS_AUDIENCE = "tools"
TRUST_DOMAIN = "trust.ssf-demo.invalid"
EVENTS = [
    SESSION_REVOKED,
    CREDENTIAL_CHANGE,
    TOKEN_CLAIMS_CHANGE,
    RISK_LEVEL_CHANGE,
    DEVICE_COMPLIANCE_CHANGE,
]
log = logging.getLogger("receivers.examples")


class DevIdentityProvider:
    def __init__(self, directory: Path) -> None:
        path = directory / "idp.json"
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            fresh = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"})
            fresh.ensure_kid()
            # Written aside, then linked into place: examples started together (compose,
            # compose/loopback.py) agree on one key and never read a half-written file.
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".idp-", suffix=".json")
            try:
                with os.fdopen(fd, "w") as out:  # mkstemp creates it with mode 0600
                    json.dump(fresh.as_dict(private=True), out)
                with contextlib.suppress(FileExistsError):  # another process was first: use its key
                    os.link(temporary, path)
            finally:
                os.unlink(temporary)
        key = import_key(json.loads(path.read_text()))
        key.ensure_kid()
        self.key = key

    def mint(
        self, sub: str, *, typ: str = "at+jwt", aud: str = TOOLS_AUDIENCE, ttl: int = 600, **claims: Any
    ) -> str:
        now = int(time.time())
        body = {
            "iss": DEV_ISSUER,
            "sub": sub,
            "aud": aud,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        body.update(claims)
        return jwt.encode(
            {"alg": "ES256", "kid": self.key.kid, "typ": typ}, body, self.key, algorithms=["ES256"]
        )

    def identity(self) -> AnyIdentity:
        """How a service behind the middleware recognises callers: bearer JWT and/or Txn-Token."""
        keys = StaticKeys([import_key(self.key.as_dict(private=False))])
        bearer = JwtVerifier(keys, issuer=DEV_ISSUER, audience=TOOLS_AUDIENCE, typ="at+jwt")
        txn = JwtVerifier(keys, issuer=None, audience=TRUST_DOMAIN, typ="txntoken+jwt")
        return AnyIdentity(BearerJwtIdentity(bearer), TxnTokenIdentity(txn, issuer=DEV_ISSUER))


class CommandToken:
    """A token source that runs a command (``ssf-hub token ...``) and uses what it prints;
    it runs the command again when the hub refuses the token (expiry)."""

    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)
        self._token: str | None = None

    async def token(self, *, rejected: str | None = None) -> str:
        if self._token is None or self._token == rejected:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            out, err = await proc.communicate()
            if proc.returncode != 0:
                raise TokenError(f"{self.argv[0]} failed: {err.decode().strip()}")
            self._token = out.decode().strip()
        return self._token


def _ssf_hub() -> str:
    """``ssf-hub`` on PATH, else the one installed beside this Python (``.venv/bin``)."""
    beside = Path(sys.executable).parent / "ssf-hub"
    return shlex.quote(shutil.which("ssf-hub") or str(beside))


def common_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--hub", default="http://127.0.0.1:8080", help="the transmitter's issuer URL")
    parser.add_argument(
        "--token-command",
        default=f"{_ssf_hub()} token --sub {name} --scope ssf.manage --ttl 3600",
        help="prints an access token for the hub (run from the hub's directory)",
    )
    parser.add_argument("--subject", action="append", default=None, help="email of a user to subscribe to")
    parser.add_argument("--demo-dir", default=".ssf-demo", help="where the development IdP key lives")


def subscribe(
    args: argparse.Namespace,
    access: ContinuousAccess,
    *,
    name: str,
    extra_subjects: Sequence[dict[str, Any]] = (),
) -> Subscription:
    """``async with subscribe(...)``: the example's poll stream at the hub, found again on a
    restart (by ``name``), with the ``--subject`` users, verified before the block runs."""
    hub = Hub(args.hub, auth=CommandToken(args.token_command))
    users = [{"format": "email", "email": email} for email in args.subject or ["alice@example.com"]]
    return hub.subscribe(events=EVENTS, subjects=[*users, *extra_subjects], on=access, name=name)


def log_audit(access: ContinuousAccess) -> None:
    access.audit.add_sink(lambda r: print("audit:", json.dumps(r.as_dict(), default=str), flush=True))


async def serve(app: Any, host: str, port: int) -> None:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    await uvicorn.Server(config).serve()
