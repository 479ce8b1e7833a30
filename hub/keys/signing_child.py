"""The signing process: ``python -m hub.keys.signing_child``, started and fed by :mod:`hub.keys.signing`.

It reads frames from stdin and answers on stdout, one answer per ``sign`` frame, in order:

    parent -> child   ("key", kid, alg, private_jwk)         remember a key
                      ("sign", batch, kid, typ, [claims...])  sign each claims dict
    child -> parent   ("signed", batch, [jwt...]) | ("failed", batch, message)

A frame is a 4-byte big-endian length and a pickle. Pickle is safe here because both ends
are the hub: the pipes are private to the parent and the child it started.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, import_key

from hub.keys.ring import eddsa_allowed

HEADER = struct.Struct("!I")


def read_frame(stream: BinaryIO) -> Any:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None  # the parent closed the pipe: time to go
    (size,) = HEADER.unpack(head)
    return pickle.loads(stream.read(size))  # noqa: S301 - from our parent, on a private pipe


def encode_frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


def serve(inbox: BinaryIO, outbox: BinaryIO) -> None:
    keys: dict[str, tuple[str, Key]] = {}
    while (message := read_frame(inbox)) is not None:
        if message[0] == "key":
            _, kid, alg, jwk = message
            keys[kid] = (alg, import_key(jwk))
            continue
        _, batch, kid, typ, claims_list = message
        try:
            alg, key = keys[kid]
            header = {"alg": alg, "typ": typ, "kid": kid}
            with eddsa_allowed():
                signed = [jwt.encode(header, claims, key, algorithms=[alg]) for claims in claims_list]
            answer: tuple[Any, ...] = ("signed", batch, signed)
        except (KeyError, JoseError, ValueError, TypeError) as exc:
            answer = ("failed", batch, f"{type(exc).__name__}: {exc}")
        outbox.write(encode_frame(answer))
        outbox.flush()


def main() -> None:
    # Answers go to a private copy of stdout; fd 1 then points at stderr, so a stray print
    # from a library can never corrupt a frame.
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        serve(sys.stdin.buffer, outbox)


if __name__ == "__main__":
    main()
