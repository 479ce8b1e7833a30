"""A transmitter's refusal, shown to operators whatever the shape of its error body (issue #15).

Pure functions (``hub.core.upstream_compat``); the HTTP side is in test_upstream_quirks.py.
"""

from __future__ import annotations

import json

import pytest

from hub.core.upstream_compat import events_named, peer_error_text, without_nulls

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1cHN0cmVhbTppZHAifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        (
            {"err": "invalid_request", "description": "bad delivery"},
            "application/json",
            "invalid_request: bad delivery",
        ),
        (
            {"error": "invalid_client", "error_description": "unknown"},
            "application/json",
            "invalid_client: unknown",
        ),
        ({"detail": "Not authenticated"}, "application/json", "Not authenticated"),
        (
            {
                "detail": [
                    {"type": "missing", "loc": ["body", "aud"], "msg": "Field required", "input": {"x": 1}}
                ]
            },
            "application/json",
            "body.aud: Field required",
        ),
        ({"message": "stream limit reached"}, "application/json", "stream limit reached"),
        (["odd", 1], "application/json", '["odd",1]'),
        (b"Method Not Allowed", "text/plain", "Method Not Allowed"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html", "502 Bad Gateway"),
        (b"", "text/plain", ""),
    ],
)
def test_every_error_body_shape_becomes_one_line(body: object, content_type: str, shown: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert peer_error_text(raw, content_type) == shown


def test_echoed_tokens_are_never_shown_and_the_text_is_short() -> None:
    echo = {
        "detail": [
            {"loc": ["body", "aud"], "msg": "Field required", "input": {"authorization_header": TOKEN}}
        ]
    }
    assert TOKEN not in peer_error_text(json.dumps(echo).encode())
    plain = f"refused delivery with Authorization: Bearer {TOKEN} and token {TOKEN}".encode()
    shown = peer_error_text(plain, "text/plain")
    assert TOKEN not in shown and shown.count("[redacted]") == 2
    assert len(peer_error_text(b"x" * 5000, "text/plain")) == 300


def test_the_event_types_a_refusal_names_are_found() -> None:
    caep = "https://schemas.openid.net/secevent/caep/event-type/"
    requested = [caep + "session-revoked", caep + "credential-change", caep + "risk-level-change"]
    text = f"unsupported event types: {caep}credential-change, {caep}risk-level-change."
    assert events_named(text, requested) == {caep + "credential-change", caep + "risk-level-change"}
    assert events_named("bad request", requested) == set()


def test_null_members_are_absent() -> None:
    doc = {"stream_id": "s", "description": None, "delivery": {"method": "m", "authorization_header": None}}
    assert without_nulls(doc) == {"stream_id": "s", "delivery": {"method": "m"}}
    assert without_nulls(None) is None
