"""Stream-configuration rules (spec §4: R-STREAM-3, -5, -6, -10, -11; AMB-5, AMB-8, AMB-9).

The receiver supplies ``events_requested``, ``delivery`` and ``description``; the transmitter
supplies everything else and only echoes of its current values are accepted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hub.core.model import POLL_METHOD, PUSH_METHOD, Delivery, Status, Stream, SubjectMode
from hub.core.streams import (
    AUTH_HEADER_MAX,
    DESCRIPTION_MAX,
    StreamPolicy,
    apply_update,
    events_delivered,
    new_stream,
    parse_receiver_fields,
    stream_config,
)
from hub.errors import InvalidRequest
from receivers.events import CAEP_BASE, RISC_BASE

REVOKED = CAEP_BASE + "session-revoked"
CRED_CHANGE = CAEP_BASE + "credential-change"
DISABLED = RISC_BASE + "account-disabled"
UNKNOWN = "https://example.com/event-type/not-in-the-catalogue"
ISS = "https://hub.example.com"
LEGACY_PUSH = "https://schemas.openid.net/secevent/risc/delivery-method/push"
LEGACY_POLL = "https://schemas.openid.net/secevent/risc/delivery-method/poll"
RECEIVER_URL = "https://agent.example.com/ssf/events"

POLICY = StreamPolicy(
    supported_events=(REVOKED, CRED_CHANGE, DISABLED),
    delivery_methods=(POLL_METHOD, PUSH_METHOD),
    min_verification_interval=5,
    inactivity_timeout=None,
)
POLL_ONLY = replace(POLICY, delivery_methods=(POLL_METHOD,))


def poll_url(stream_id: str) -> str:
    return f"{ISS}/ssf/poll/{stream_id}"


def create(body: Any, policy: StreamPolicy = POLICY) -> Stream:
    return new_stream(
        parse_receiver_fields(body),
        stream_id="s1",
        owner="agent-1",
        iss=ISS,
        aud="agent-1",
        policy=policy,
        subject_mode=SubjectMode.NONE,
        poll_url=poll_url,
        now=1000.0,
    )


def update(stream: Stream, body: dict[str, Any], *, put: bool = False) -> Stream:
    return apply_update(
        stream,
        {"stream_id": stream.stream_id, **body},
        replace_all=put,
        policy=POLICY,
        poll_url=poll_url,
        now=2000.0,
    )


def push(url: str = RECEIVER_URL, **extra: Any) -> dict[str, Any]:
    return {"method": PUSH_METHOD, "endpoint_url": url, **extra}


# --- parse_receiver_fields: types of the receiver-supplied fields ------------------------------


@pytest.mark.parametrize("body", [[], "text", None, 42])
def test_the_body_must_be_a_json_object(body: Any) -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse_receiver_fields(body)


@pytest.mark.parametrize("value", [REVOKED, [1], [REVOKED, None], {"uri": REVOKED}])
def test_events_requested_must_be_an_array_of_strings(value: Any) -> None:  # R-STREAM-3
    with pytest.raises(InvalidRequest, match="events_requested"):
        parse_receiver_fields({"events_requested": value})


def test_events_requested_duplicates_are_dropped_keeping_the_first_order() -> None:
    fields = parse_receiver_fields({"events_requested": [DISABLED, REVOKED, DISABLED]})
    assert fields.events_requested == (DISABLED, REVOKED)


@pytest.mark.parametrize("value", [7, ["a"], {"text": "a"}])
def test_description_must_be_a_string(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="description"):
        parse_receiver_fields({"description": value})


def test_description_is_truncated_to_description_max() -> None:  # R-STREAM-3: T MAY truncate
    fields = parse_receiver_fields({"description": "x" * (DESCRIPTION_MAX + 50)})
    assert fields.description == "x" * DESCRIPTION_MAX


@pytest.mark.parametrize(
    ("delivery", "match"),
    [
        ("poll", "delivery must be an object"),
        ({}, "method"),
        ({"method": ""}, "method"),
        ({"method": 8936}, "method"),
        ({"method": PUSH_METHOD, "endpoint_url": ["https://a.example"]}, "endpoint_url"),
        (push(authorization_header=123), "authorization_header"),
        (push(authorization_header="Bearer a\nX-Injected: 1"), "authorization_header"),
        (push(authorization_header="x" * (AUTH_HEADER_MAX + 1)), "authorization_header"),
    ],
)
def test_malformed_delivery_objects_are_refused(delivery: Any, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        parse_receiver_fields({"delivery": delivery})


def test_present_lists_only_the_receiver_fields_with_a_value() -> None:
    fields = parse_receiver_fields({"description": "d", "events_requested": None, "iss": ISS})
    assert fields.present == frozenset({"description"})
    assert fields.events_requested is None


# --- events_delivered = supported ∩ requested (R-STREAM-3, AMB-8) ------------------------------


def test_events_delivered_is_the_intersection_in_the_receivers_order() -> None:
    supported = (REVOKED, CRED_CHANGE, DISABLED)
    assert events_delivered(supported, [DISABLED, UNKNOWN, REVOKED]) == (DISABLED, REVOKED)


@pytest.mark.parametrize("requested", [None, []])
def test_nothing_is_delivered_when_nothing_is_requested(requested: list[str] | None) -> None:
    assert events_delivered((REVOKED,), requested) == ()


def test_a_request_of_only_unsupported_events_is_refused_naming_the_supported_ones() -> None:
    # Issue 13: never a stream that will not receive anything.
    with pytest.raises(InvalidRequest, match="none of events_requested is delivered here") as info:
        events_delivered((REVOKED, DISABLED), [UNKNOWN])
    assert f"supported event types: {REVOKED}, {DISABLED}" in info.value.description


def test_short_names_and_legacy_uris_are_read_as_their_event_types() -> None:
    legacy = "https://schemas.openid.net/secevent/sse/event-type/verification"
    stream = create({"events_requested": ["session-revoked", REVOKED, "account-disabled", legacy]})
    verification = "https://schemas.openid.net/secevent/ssf/event-type/verification"
    assert stream.events_requested == (REVOKED, DISABLED, verification)
    assert stream.events_delivered == (REVOKED, DISABLED)


# --- creating a stream (R-STREAM-5, R-STREAM-6) -------------------------------------------------


def test_a_stream_created_without_delivery_is_poll_with_a_transmitter_chosen_url() -> None:  # R-STREAM-6
    stream = create({"events_requested": [REVOKED]})
    assert stream.delivery == Delivery(method=POLL_METHOD, endpoint_url=poll_url("s1"))


def test_a_new_stream_takes_the_policy_and_request_values() -> None:  # R-STREAM-5
    stream = create({"events_requested": [UNKNOWN, CRED_CHANGE], "description": "my agent"})
    assert (stream.stream_id, stream.owner, stream.iss, stream.aud) == ("s1", "agent-1", ISS, "agent-1")
    assert stream.events_requested == (UNKNOWN, CRED_CHANGE)
    assert stream.events_delivered == (CRED_CHANGE,)  # unknown URIs ignored
    assert stream.description == "my agent"
    assert stream.status is Status.ENABLED
    assert stream.min_verification_interval == 5
    assert stream.created_at == stream.updated_at == stream.last_activity_at == 1000.0


def test_a_poll_endpoint_url_from_the_receiver_must_be_the_transmitters_own() -> None:  # R-STREAM-3
    assert create({"delivery": {"method": POLL_METHOD, "endpoint_url": poll_url("s1")}}).delivery.method == (
        POLL_METHOD
    )
    with pytest.raises(InvalidRequest, match="chosen by the transmitter"):
        create({"delivery": {"method": POLL_METHOD, "endpoint_url": "https://elsewhere.example/poll"}})


def test_an_authorization_header_is_refused_for_poll() -> None:
    with pytest.raises(InvalidRequest, match="push streams only"):
        create({"delivery": {"method": POLL_METHOD, "authorization_header": "Bearer x"}})


def test_push_is_refused_when_the_policy_does_not_offer_it() -> None:  # R-STREAM-6: T MAY 400
    with pytest.raises(InvalidRequest, match="not supported"):
        create({"delivery": push()}, policy=POLL_ONLY)


def test_an_unknown_delivery_method_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="not supported"):
        create({"delivery": {"method": "urn:example:carrier-pigeon"}})


def test_push_needs_an_endpoint_url() -> None:  # R-STREAM-3: R supplies endpoint_url for push
    with pytest.raises(InvalidRequest, match=r"needs delivery\.endpoint_url"):
        create({"delivery": {"method": PUSH_METHOD}})


@pytest.mark.parametrize(
    "url", ["ftp://agent.example.com/x", "/ssf/events", "https://", "agent.example.com/x"]
)
def test_a_push_endpoint_url_must_be_an_absolute_http_url(url: str) -> None:
    with pytest.raises(InvalidRequest, match="absolute http"):
        create({"delivery": push(url)})


@pytest.mark.parametrize("url", [RECEIVER_URL, "http://127.0.0.1:9000/events"])
def test_a_push_stream_keeps_the_receivers_url_and_authorization_header(url: str) -> None:  # R-STREAM-3
    stream = create({"delivery": push(url, authorization_header="Bearer secret")})
    assert stream.delivery == Delivery(PUSH_METHOD, url, "Bearer secret")


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        ({"delivery_method": LEGACY_PUSH, "url": RECEIVER_URL}, Delivery(PUSH_METHOD, RECEIVER_URL)),
        ({"delivery_method": LEGACY_POLL}, Delivery(POLL_METHOD, poll_url("s1"))),
    ],
)
def test_an_sse_id1_delivery_object_is_normalised(
    legacy: dict[str, Any], expected: Delivery
) -> None:  # AMB-5
    assert create({"delivery": legacy}).delivery == expected


# --- PATCH and PUT (R-STREAM-10, R-STREAM-11) ---------------------------------------------------


@pytest.fixture
def stream() -> Stream:
    return create({"events_requested": [REVOKED, DISABLED], "description": "before"})


def test_patch_leaves_absent_receiver_fields_unchanged(stream: Stream) -> None:  # R-STREAM-10
    patched = update(stream, {"description": "after"})
    assert patched.description == "after"
    assert patched.events_requested == (REVOKED, DISABLED)
    assert patched.events_delivered == (REVOKED, DISABLED)
    assert patched.delivery == stream.delivery


def test_patch_of_events_requested_recomputes_events_delivered(stream: Stream) -> None:  # R-STREAM-10
    patched = update(stream, {"events_requested": [CRED_CHANGE, UNKNOWN]})
    assert patched.events_delivered == (CRED_CHANGE,)
    assert patched.description == "before"


def test_an_update_touches_updated_at_and_activity_but_not_created_at(stream: Stream) -> None:  # R-STREAM-4
    patched = update(stream, {})
    assert (patched.created_at, patched.updated_at, patched.last_activity_at) == (1000.0, 2000.0, 2000.0)


def test_put_deletes_the_receiver_fields_it_omits(stream: Stream) -> None:  # R-STREAM-11
    replaced = update(stream, {"events_requested": [CRED_CHANGE]}, put=True)
    assert replaced.description is None
    assert replaced.events_requested == (CRED_CHANGE,)
    assert replaced.events_delivered == (CRED_CHANGE,)
    emptied = update(stream, {}, put=True)
    assert (emptied.events_requested, emptied.events_delivered, emptied.description) == (None, (), None)
    assert emptied.delivery == stream.delivery  # an omitted delivery falls back to poll (R-STREAM-6)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("stream_id", "someone-elses-stream"),
        ("iss", "https://evil.example.com"),
        ("aud", "another-receiver"),
        ("aud", ["agent-1", "another-receiver"]),
        ("events_supported", [REVOKED]),
        ("events_delivered", [CRED_CHANGE]),
        ("min_verification_interval", 60),
        ("inactivity_timeout", 3600),
    ],
)
@pytest.mark.parametrize("put", [False, True])
def test_changing_a_transmitter_field_is_refused(stream: Stream, name: str, value: Any, put: bool) -> None:
    # R-STREAM-10/-11: T-supplied values MAY be sent, but must equal the current ones (else 400).
    with pytest.raises(InvalidRequest, match=f"{name} is set by the transmitter"):
        apply_update(stream, {name: value}, replace_all=put, policy=POLICY, poll_url=poll_url, now=2.0)


@pytest.mark.parametrize("put", [False, True])
def test_echoing_the_whole_current_config_back_changes_nothing(stream: Stream, put: bool) -> None:
    config = stream_config(stream, POLICY.supported_events)
    again = update(stream, config, put=put)
    assert stream_config(again, POLICY.supported_events) == config


@pytest.mark.parametrize("aud", ["agent-1", ["agent-1"]])
def test_aud_may_be_echoed_as_a_string_or_a_one_element_list(stream: Stream, aud: Any) -> None:  # R-STREAM-3
    assert update(stream, {"aud": aud}).aud == "agent-1"


def test_events_delivered_must_equal_the_value_before_the_update(stream: Stream) -> None:  # R-STREAM-10
    before = list(stream.events_delivered)
    patched = update(stream, {"events_requested": [CRED_CHANGE], "events_delivered": before})
    assert patched.events_delivered == (CRED_CHANGE,)
    with pytest.raises(InvalidRequest, match="events_delivered"):
        update(stream, {"events_requested": [CRED_CHANGE], "events_delivered": [CRED_CHANGE]})


def test_events_delivered_is_compared_as_a_set(stream: Stream) -> None:
    reordered = list(reversed(stream.events_delivered))
    assert update(stream, {"events_delivered": reordered}).events_delivered == stream.events_delivered


def test_a_null_transmitter_field_counts_as_absent(stream: Stream) -> None:
    assert update(stream, {"iss": None, "events_delivered": None}).events_delivered == (REVOKED, DISABLED)


def test_the_delivery_method_cannot_be_changed(stream: Stream) -> None:  # AMB-9: hub policy, 400
    with pytest.raises(InvalidRequest, match="cannot be changed"):
        update(stream, {"delivery": push()})
    push_stream = create({"delivery": push()})
    with pytest.raises(InvalidRequest, match="cannot be changed"):
        update(push_stream, {"delivery": {"method": POLL_METHOD}})
    with pytest.raises(InvalidRequest, match="cannot be changed"):
        update(push_stream, {}, put=True)  # PUT without delivery asks for the poll default


def test_a_push_stream_may_move_its_endpoint_url() -> None:
    push_stream = create({"delivery": push(authorization_header="Bearer old")})
    moved = update(push_stream, {"delivery": push("https://agent.example.com/v2")})
    assert moved.delivery == Delivery(PUSH_METHOD, "https://agent.example.com/v2")


def test_a_legacy_delivery_object_in_an_update_is_normalised(stream: Stream) -> None:  # AMB-5
    push_stream = create({"delivery": push()})
    moved = update(push_stream, {"delivery": {"delivery_method": LEGACY_PUSH, "url": "https://n.example/e"}})
    assert moved.delivery == Delivery(PUSH_METHOD, "https://n.example/e")
    assert update(stream, {"delivery": {"delivery_method": LEGACY_POLL}}).delivery == stream.delivery


def test_an_update_truncates_the_description(stream: Stream) -> None:
    assert update(stream, {"description": "y" * (DESCRIPTION_MAX + 1)}).description == "y" * DESCRIPTION_MAX


# --- the configuration object the receiver sees (R-STREAM-3, R-STREAM-9) ------------------------


def test_stream_config_of_a_minimal_stream_has_only_the_required_fields() -> None:
    # min_verification_interval is always stated, 0 included, so a receiver can echo it back.
    minimal = replace(create({}), min_verification_interval=0)
    config = stream_config(minimal, POLICY.supported_events)
    assert config == {
        "stream_id": "s1",
        "iss": ISS,
        "aud": "agent-1",
        "delivery": {"method": POLL_METHOD, "endpoint_url": poll_url("s1")},
        "events_supported": [REVOKED, CRED_CHANGE, DISABLED],
        "events_delivered": [],  # REQUIRED even when empty
        "min_verification_interval": 0,
    }


def test_stream_config_includes_the_optional_fields_that_have_a_value() -> None:
    full = replace(create({"events_requested": [DISABLED], "description": "d"}), inactivity_timeout=86400)
    config = stream_config(full, POLICY.supported_events)
    assert config["events_requested"] == [DISABLED]
    assert config["events_delivered"] == [DISABLED]
    assert config["description"] == "d"
    assert config["min_verification_interval"] == 5
    assert config["inactivity_timeout"] == 86400


def test_stream_config_shows_a_push_authorization_header_only_when_set() -> None:
    assert stream_config(create({"delivery": push()}), ())["delivery"] == push()
    with_auth = create({"delivery": push(authorization_header="Bearer z")})
    assert stream_config(with_auth, ())["delivery"]["authorization_header"] == "Bearer z"
