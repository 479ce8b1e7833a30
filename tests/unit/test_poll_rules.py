"""RFC 8936 poll requests and responses (R-POLL-2, R-POLL-3, R-POLL-4, R-POLL-8).

Every request member is optional; the hub caps ``maxEvents`` (DESIGN.md: default 100, max
1,000) and answers with ``sets`` always and ``moreAvailable`` only when it is true.
"""

from __future__ import annotations

from typing import Any

import pytest

from hub.core.model import QueuedSet
from hub.core.poll import MAX_ACKS, PollRequest, parse_poll_request, poll_response
from hub.errors import InvalidRequest

DEFAULT_MAX = 100
LIMIT = 1000


def parse(body: Any) -> PollRequest:
    return parse_poll_request(body, default_max=DEFAULT_MAX, limit=LIMIT)


def queued(jti: str) -> QueuedSet:
    return QueuedSet(stream_id="s1", jti=jti, set_jwt=f"header.{jti}.sig", event_type="urn:example:event")


# --- parse_poll_request -------------------------------------------------------------------------


def test_an_empty_request_gets_the_defaults() -> None:  # R-POLL-2: all members optional
    assert parse({}) == PollRequest(max_events=DEFAULT_MAX, return_immediately=False, ack=(), set_errs={})


@pytest.mark.parametrize("body", [[], "poll", None, 10])
def test_the_request_must_be_a_json_object(body: Any) -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse(body)


@pytest.mark.parametrize(
    ("asked", "granted"), [(1, 1), (250, 250), (LIMIT, LIMIT), (LIMIT + 1, LIMIT), (10**9, LIMIT)]
)
def test_max_events_is_honoured_up_to_the_limit(asked: int, granted: int) -> None:  # R-POLL-2, R-POLL-8
    assert parse({"maxEvents": asked}).max_events == granted


def test_max_events_zero_means_acknowledge_only() -> None:  # R-POLL-2: 0 = return none
    request = parse({"ack": ["j1"], "maxEvents": 0, "returnImmediately": True})
    assert (request.max_events, request.ack, request.return_immediately) == (0, ("j1",), True)


@pytest.mark.parametrize("value", [-1, True, False, "10", 2.5, 10.0, None, [10]])
def test_max_events_must_be_a_non_negative_integer(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="maxEvents"):
        parse({"maxEvents": value})


@pytest.mark.parametrize("value", [True, False])
def test_return_immediately_is_a_boolean(value: bool) -> None:  # R-POLL-2
    assert parse({"returnImmediately": value}).return_immediately is value


@pytest.mark.parametrize("value", ["true", 1, 0, None, {}])
def test_return_immediately_refuses_other_types(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="returnImmediately"):
        parse({"returnImmediately": value})


def test_ack_keeps_the_first_of_each_jti_in_order() -> None:  # R-POLL-2
    assert parse({"ack": ["j2", "j1", "j2", "j3", "j1"]}).ack == ("j2", "j1", "j3")


@pytest.mark.parametrize("value", ["j1", [1], ["j1", None], {"j1": True}, None])
def test_ack_must_be_an_array_of_strings(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="ack"):
        parse({"ack": value})


def test_ack_is_limited_per_request() -> None:
    assert len(parse({"ack": [f"j{i}" for i in range(MAX_ACKS)]}).ack) == MAX_ACKS
    with pytest.raises(InvalidRequest, match=f"at most {MAX_ACKS}"):
        parse({"ack": [f"j{i}" for i in range(MAX_ACKS + 1)]})


def test_set_errs_maps_jti_to_err_and_description() -> None:  # R-POLL-2, R-POLL-4
    request = parse(
        {
            "setErrs": {
                "j2": {"err": "invalid_key", "description": "key expired"},
                "j3": {"err": "invalid_state"},
            }
        }
    )
    assert request.set_errs == {"j2": ("invalid_key", "key expired"), "j3": ("invalid_state", "")}


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (["j2"], "setErrs must be an object"),
        ("j2", "setErrs must be an object"),
        ({"j2": "invalid_key"}, r"setErrs\[j2\]"),
        ({"j2": {}}, r"setErrs\[j2\]"),
        ({"j2": {"err": 400}}, r"setErrs\[j2\]"),
        ({"j2": {"err": "invalid_key", "description": ["x"]}}, r"setErrs\[j2\]\.description"),
    ],
)
def test_set_errs_must_have_the_rfc_8936_shape(value: Any, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        parse({"setErrs": value})


def test_set_errs_strings_are_truncated_and_their_count_limited() -> None:
    request = parse({"setErrs": {"j": {"err": "e" * 500, "description": "d" * 5000}}})
    assert request.set_errs["j"] == ("e" * 100, "d" * 1000)
    too_many = {f"j{i}": {"err": "invalid_request"} for i in range(MAX_ACKS + 1)}
    with pytest.raises(InvalidRequest, match="setErrs"):
        parse({"setErrs": too_many})


@pytest.mark.parametrize(
    "body",
    [
        {"maxEvents": 10, "returnImmediately": False},
        {"ack": ["j1"], "maxEvents": 0, "returnImmediately": True},
        {"ack": ["j1", "j3"], "maxEvents": 10},
        {"ack": ["j1"], "setErrs": {"j2": {"err": "invalid_key", "description": "..."}}},
    ],
)
def test_the_rfc_8936_example_requests_parse(body: dict[str, Any]) -> None:  # R-POLL-4
    request = parse(body)
    assert request.ack == tuple(body.get("ack", ()))
    assert set(request.set_errs) == set(body.get("setErrs", {}))


def test_unknown_members_are_ignored() -> None:
    assert parse({"maxEvents": 3, "futureExtension": {"x": 1}}).max_events == 3


# --- poll_response (R-POLL-3) ---------------------------------------------------------------------


def test_an_empty_response_still_has_sets() -> None:  # R-POLL-3: sets REQUIRED, {} when none
    assert poll_response([], more_available=False) == {"sets": {}}


def test_the_response_maps_each_jti_to_its_compact_set() -> None:
    response = poll_response([queued("j1"), queued("j2")], more_available=False)
    assert response == {"sets": {"j1": "header.j1.sig", "j2": "header.j2.sig"}}


def test_more_available_appears_only_when_true() -> None:  # R-POLL-3: absent means false
    assert poll_response([queued("j1")], more_available=True) == {
        "sets": {"j1": "header.j1.sig"},
        "moreAvailable": True,
    }
    assert "moreAvailable" not in poll_response([queued("j1")], more_available=False)
