"""The bare Starlette app the HTTP floors are measured on (served by uvicorn as the hub is:
uvloop, httptools, no access log).

    .venv/bin/python -m uvicorn tests.bench.floor_app:app --port PORT --no-access-log

``POST /null`` answers 202 and nothing else. ``POST /verify/{alg}`` (ES256 or RS256) also
checks the body as a compact JWS with joserfc: one signature verify per request, the ingest
floor. ``GET /set/{alg}`` gives a SET signed with the key ``/verify/{alg}`` trusts.
"""

from __future__ import annotations

import json

from joserfc import jws
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.bench.micro import CLAIMS

KEYS: dict[str, ECKey | RSAKey] = {
    "ES256": ECKey.generate_key("P-256", parameters={"alg": "ES256"}),
    "RS256": RSAKey.generate_key(2048, parameters={"alg": "RS256"}),
}
SIGNED = {
    alg: jws.serialize_compact({"alg": alg, "typ": "secevent+jwt"}, json.dumps(CLAIMS), key, algorithms=[alg])
    for alg, key in KEYS.items()
}


async def null(request: Request) -> Response:
    await request.body()
    return Response(status_code=202)


async def verify(request: Request) -> Response:
    alg = request.path_params["alg"]
    jws.deserialize_compact(await request.body(), KEYS[alg], algorithms=[alg])
    return Response(status_code=202)


async def signed(request: Request) -> Response:
    return PlainTextResponse(SIGNED[request.path_params["alg"]])


app = Starlette(
    routes=[
        Route("/null", null, methods=["POST"]),
        Route("/verify/{alg}", verify, methods=["POST"]),
        Route("/set/{alg}", signed, methods=["GET"]),
    ]
)
