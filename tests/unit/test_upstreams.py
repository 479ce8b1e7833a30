"""Upstream subscription rules without I/O: configuration checks, discovery URLs, backoff."""

from __future__ import annotations

from typing import Any

import pytest

from hub.config import load_settings
from hub.core.upstream_compat import revocation_events
from hub.core.upstreams import (
    ClientCredentials,
    DeliveryMode,
    Health,
    StaticBearer,
    Upstream,
    UpstreamState,
    backoff_delay,
    choose_delivery,
    issuer_from_config_url,
    parse_upstream,
)
from hub.errors import ConfigError, InvalidRequest
from receivers.events import CATALOGUE

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
PUSH, POLL = "urn:ietf:rfc:8935", "urn:ietf:rfc:8936"
DEFAULTS = (CAEP + "session-revoked", CAEP + "credential-change")
BEARER = {"type": "bearer", "token": "dev"}


def parse(body: dict[str, Any]) -> Upstream:
    return parse_upstream(body, upstream_id="idp", default_events=DEFAULTS, now=100.0)


@pytest.mark.parametrize(
    ("configured", "methods", "chosen"),
    [
        (None, (PUSH,), DeliveryMode.PUSH),  # a push-only transmitter (issue #15)
        (None, (POLL,), DeliveryMode.POLL),
        (None, (PUSH, POLL), DeliveryMode.POLL),  # both: poll, as before
        (None, (), DeliveryMode.POLL),  # none listed (or null)
        (DeliveryMode.PUSH, (POLL,), DeliveryMode.PUSH),  # the operator's choice stands
    ],
)
def test_auto_delivery_follows_the_methods_the_transmitter_lists(
    configured: DeliveryMode | None, methods: tuple[str, ...], chosen: DeliveryMode
) -> None:
    assert choose_delivery(configured, methods) is chosen


def test_the_default_upstream_events_are_the_revocation_relevant_ones() -> None:
    events = revocation_events()
    assert CAEP + "session-revoked" in events and RISC + "account-disabled" in events
    assert CAEP + "session-established" not in events and RISC + "account-enabled" not in events
    assert set(events) <= set(CATALOGUE.deliverable_uris())


@pytest.mark.parametrize(
    ("url", "issuer"),
    [
        ("https://idp.example.com", "https://idp.example.com"),
        ("https://idp.example.com/", "https://idp.example.com"),
        ("https://idp.example.com/.well-known/ssf-configuration", "https://idp.example.com"),
        ("https://idp.example.com/.well-known/ssf-configuration/tenant1", "https://idp.example.com/tenant1"),
        ("https://idp.example.com/tenant1/.well-known/ssf-configuration", "https://idp.example.com/tenant1"),
        ("https://accounts.google.com/.well-known/risc-configuration", "https://accounts.google.com"),
        ("https://idp.example.com/.well-known/sse-configuration", "https://idp.example.com"),
        ("https://idp.example.com/realms/x", "https://idp.example.com/realms/x"),
    ],
)
def test_a_configuration_url_names_its_issuer(url: str, issuer: str) -> None:
    # R-DISC-1 path insertion, AMB-1 legacy names
    assert issuer_from_config_url(url) == issuer


def test_an_upstream_defaults_to_auto_delivery_and_the_default_events() -> None:
    upstream = parse({"config_url": "https://idp.example.com", "token_source": BEARER})
    assert upstream.upstream_id == "idp" and upstream.delivery is None  # picked at connect
    assert upstream.events_requested == DEFAULTS and upstream.token_source == StaticBearer("dev")
    assert upstream.created_at == 100.0 and upstream.state.health is Health.PENDING


def test_short_event_names_are_resolved_and_duplicates_dropped() -> None:
    upstream = parse(
        {
            "config_url": "https://idp.example.com",
            "token_source": BEARER,
            "events_requested": ["session-revoked", CAEP + "session-revoked", "urn:example:custom"],
        }
    )
    assert upstream.events_requested == (CAEP + "session-revoked", "urn:example:custom")


def test_client_credentials_are_read_with_their_options() -> None:
    source = {
        "type": "client_credentials",
        "token_endpoint": "https://idp.example.com/token",
        "client_id": "ssf-hub",
        "private_key_file": "/etc/ssf-hub/key.pem",
        "scope": "ssf.manage",
    }
    upstream = parse({"config_url": "https://idp.example.com", "token_source": source, "delivery": "push"})
    assert upstream.token_source == ClientCredentials(
        "https://idp.example.com/token", "ssf-hub", "/etc/ssf-hub/key.pem", scope="ssf.manage"
    )
    assert upstream.delivery is DeliveryMode.PUSH


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ([], "JSON object"),
        ({"token_source": BEARER}, "config_url"),
        ({"config_url": "ftp://idp", "token_source": BEARER}, "config_url"),
        ({"config_url": "https://idp"}, "token_source"),
        ({"config_url": "https://idp", "token_source": {"type": "password"}}, "token_source type"),
        ({"config_url": "https://idp", "token_source": {"type": "bearer"}}, "bearer"),
        ({"config_url": "https://idp", "token_source": {"type": "client_credentials"}}, "token_endpoint"),
        ({"config_url": "https://idp", "token_source": BEARER, "delivery": "email"}, "push, poll or auto"),
        ({"config_url": "https://idp", "token_source": BEARER, "events_requested": []}, "events_requested"),
        (
            {"config_url": "https://idp", "token_source": BEARER, "events_requested": ["nope"]},
            "unknown event",
        ),
        ({"config_url": "https://idp", "token_source": BEARER, "upstream_id": "../x"}, "upstream_id"),
        ({"config_url": "https://idp", "token_source": BEARER, "colour": "red"}, "unknown field"),
    ],
)
def test_a_bad_upstream_is_refused_with_the_reason(body: Any, complaint: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(body)
    assert complaint in caught.value.description


def test_records_round_trip_and_the_public_view_hides_a_bearer_token() -> None:
    upstream = parse({"config_url": "https://idp.example.com", "token_source": BEARER})
    state = UpstreamState(stream_id="s", health=Health.HEALTHY, last_event_at=5.0)
    stored = Upstream.from_records(upstream.config_record(), state.to_record())
    assert stored.config_record() == upstream.config_record() and stored.state == state
    assert upstream.public_view()["token_source"] == {"type": "bearer"}


def test_a_failure_counts_up_and_backoff_doubles_to_a_cap() -> None:
    state = UpstreamState().failed("boom", 10.0).failed("again", 11.0)
    assert (state.health, state.failures, state.last_error, state.last_error_at) == (
        Health.FAILING,
        2,
        "again",
        11.0,
    )
    assert [backoff_delay(n, initial=1, cap=8) for n in range(6)] == [0, 1, 2, 4, 8, 8]


@pytest.mark.parametrize(
    "name", ["upstream_reload_interval", "upstream_check_interval", "upstream_verify_timeout"]
)
def test_upstream_intervals_must_be_sensible(name: str) -> None:
    assert getattr(load_settings(environ={}, overrides={name: "2.5"}), name) == 2.5
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={f"SSF_HUB_{name.upper()}": "0"})
    assert name in str(caught.value) and f"SSF_HUB_{name.upper()}" in str(caught.value)
