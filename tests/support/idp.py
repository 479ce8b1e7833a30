"""A loopback identity provider for ingest tests: its own keys, a JWKS endpoint, SET signing."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.servers import serve_app

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"


def new_key(alg: str, kid: str | None = None) -> Key:
    kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
    if alg in ("RS256", "PS256"):
        return RSAKey.generate_key(2048, parameters={"kid": kid})
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters={"kid": kid})
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", parameters={"kid": kid})
    raise ValueError(alg)


def sign(
    claims: Mapping[str, Any] | bytes, key: Key, *, alg: str, header: Mapping[str, Any] | None = None
) -> str:
    """A compact JWS of ``claims`` (typ secevent+jwt and the key's kid unless ``header`` overrides,
    a None value removing a member). Signed by hand, so tests can make headers a library refuses
    to produce (``crit``, ``jku``)."""
    protected: dict[str, Any] = {"alg": alg, "typ": "secevent+jwt", "kid": key.kid}
    protected.update(header or {})
    protected = {k: v for k, v in protected.items() if v is not None}
    payload = claims if isinstance(claims, bytes) else json.dumps(dict(claims)).encode()
    signing_input = b".".join([b64(json.dumps(protected).encode()), b64(payload)])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated")
        algorithm = jws.JWSRegistry(algorithms=[alg]).get_alg(alg)
        signature = algorithm.sign(signing_input, key)
    return (signing_input + b"." + b64(signature)).decode()


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@dataclass
class FakeIdP:
    """An upstream issuer. ``iss`` is set once its server runs (``http://127.0.0.1:PORT``)."""

    alg: str = "RS256"
    iss: str = ""
    url: str = ""
    keys: list[Key] = field(default_factory=list)
    jwks_fetches: int = 0

    @property
    def jwks_uri(self) -> str:
        return self.url + "/jwks"

    @property
    def key(self) -> Key:
        return self.keys[-1]

    def rotate(self, *, keep_old: bool = False) -> Key:
        """Start signing with a new key (new kid); the old one leaves the JWKS unless kept."""
        fresh = new_key(self.alg)
        self.keys = [*self.keys, fresh] if keep_old else [fresh]
        return fresh

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.keys]}

    def claims(
        self,
        aud: str,
        *,
        event: str = SESSION_REVOKED,
        subject: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A well-formed SSF 1.0 SET payload from this issuer to ``aud``."""
        out: dict[str, Any] = {
            "iss": self.iss,
            "jti": uuid.uuid4().hex,
            "iat": int(time.time()),
            "aud": aud,
            "sub_id": dict(subject or {"format": "email", "email": "alice@example.com"}),
            "events": {event: {"event_timestamp": int(time.time())}},
        }
        out.update(extra)
        return out

    def sign(self, claims: Mapping[str, Any], *, header: Mapping[str, Any] | None = None) -> str:
        return sign(claims, self.key, alg=self.alg, header=header)

    def set_for(self, aud: str, **kwargs: Any) -> str:
        return self.sign(self.claims(aud, **kwargs))

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            self.jwks_fetches += 1
            return JSONResponse(self.jwks())

        return Starlette(routes=[Route("/jwks", jwks)])


@contextlib.asynccontextmanager
async def run_idp(
    alg: str = "RS256", *, path: str = "/idp", tls: tuple[Path, Path] | None = None
) -> AsyncIterator[FakeIdP]:
    """Serve a fresh :class:`FakeIdP` on loopback (over https with ``tls``: certificate and key
    files); its ``iss`` is its URL plus ``path``."""
    idp = FakeIdP(alg=alg)
    idp.rotate()
    async with serve_app(idp.app(), tls=tls) as url:
        idp.url, idp.iss = url, url + path
        yield idp
