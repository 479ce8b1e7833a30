"""What a receiver's answer to a pushed SET means (R-PUSH-4..8, RFC 8935 §2.2-2.4).

A receiver answers 202 on success (R-PUSH-4), ``400`` + ``{"err", "description"}`` when it
rejects the SET (R-PUSH-5, R-PUSH-6), or a plain HTTP status for generic problems
(R-PUSH-7). Only a registered semantic ``err`` drops the SET for good (R-PUSH-8);
credential problems are retried and flagged; anything unclear is retried.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core.outcome import (
    BODY_PARSE_LIMIT,
    DESCRIPTION_MAX,
    REDIRECT_ERROR,
    Outcome,
    OutcomeKind,
    classify,
    network_failure,
)

JSON = "application/json"


def err_body(err: object, description: object = "because") -> bytes:
    return json.dumps({"err": err, "description": description}).encode()


def test_outcome_kinds_have_stable_wire_values() -> None:
    # The values are stored with each attempt and shown by the admin API.
    assert [k.value for k in OutcomeKind] == ["delivered", "permanent", "retry", "auth_retry"]
    assert str(OutcomeKind.AUTH_RETRY) == "auth_retry"  # a StrEnum: logs and JSON show the value


# --- success (R-PUSH-4) --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_delivered(status: int) -> None:
    outcome = classify(status, b"", None)
    assert outcome == Outcome(OutcomeKind.DELIVERED, status, None, None)


def test_retry_after_on_a_success_is_dropped() -> None:
    assert classify(202, b"", None, retry_after=30).retry_after is None


# --- 400 + err (R-PUSH-5, R-PUSH-6, R-PUSH-8) ----------------------------------------------------


@pytest.mark.parametrize(
    "err", ["invalid_request", "invalid_key", "invalid_issuer", "invalid_audience", "invalid_state"]
)
def test_a_semantic_rejection_is_permanent(err: str) -> None:
    # Resending the identical signed token cannot change the receiver's answer.
    outcome = classify(400, err_body(err, "aud does not name this receiver"), JSON)
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.status == 400
    assert outcome.err == err
    assert outcome.description == "aud does not name this receiver"


@pytest.mark.parametrize("err", ["authentication_failed", "access_denied"])
def test_a_credential_rejection_is_retried_and_flagged(err: str) -> None:
    # R-PUSH-8: these may clear once the receiver's credentials or grants are fixed.
    outcome = classify(400, err_body(err), JSON)
    assert outcome.kind is OutcomeKind.AUTH_RETRY
    assert outcome.err == err


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", None),
        (b"", JSON),
        (err_body("made_up_code"), JSON),
        (err_body(None), JSON),
        (err_body(123), JSON),
        (b'{"error": "invalid_request"}', JSON),  # OAuth's key, not RFC 8935's
        (b"[1, 2, 3]", JSON),
        (b"{not json", JSON),
        (b"<html><body>400 Bad Request</body></html>", "text/html"),
        (err_body("invalid_request"), "text/html"),  # a proxy page, whatever it looks like
    ],
)
def test_a_400_without_a_registered_err_is_retried(body: bytes, content_type: str | None) -> None:
    # Could be a proxy or WAF in front of the receiver: never lose a SET on that.
    assert classify(400, body, content_type).kind is OutcomeKind.RETRY


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/x+json",
    ],
)
def test_the_error_body_is_read_with_or_without_a_json_content_type(content_type: str | None) -> None:
    assert classify(400, err_body("invalid_issuer"), content_type).kind is OutcomeKind.PERMANENT


def test_only_the_first_4096_bytes_of_the_body_are_read() -> None:
    assert BODY_PARSE_LIMIT == 4096
    padded = b"{" + b" " * 4096 + b'"err": "invalid_key"}'
    outcome = classify(400, padded, JSON)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.err is None


def test_the_description_is_bounded_and_printable() -> None:
    outcome = classify(400, err_body("invalid_request", "line one\nline\x00two " + "x" * 1000), JSON)
    assert outcome.description is not None
    assert len(outcome.description) == DESCRIPTION_MAX
    assert outcome.description.startswith("line one line two xxx")


def test_a_non_string_description_is_dropped() -> None:
    outcome = classify(400, err_body("invalid_request", {"nested": True}), JSON)
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.description is None


def test_a_non_json_body_leaves_a_snippet_for_the_operator() -> None:
    outcome = classify(502, b"<html>\r\n<h1>502 Bad Gateway</h1>\r\n</html>", "text/html")
    assert outcome.err is None
    assert outcome.description == "<html> <h1>502 Bad Gateway</h1> </html>"


# --- plain HTTP statuses (R-PUSH-7) --------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_retried_and_flag_the_credentials(status: int) -> None:
    outcome = classify(status, b"", None, retry_after=60)
    assert outcome.kind is OutcomeKind.AUTH_RETRY
    assert outcome.status == status
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed_and_is_retried(status: int) -> None:
    outcome = classify(status, b"", None, retry_after=10)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error == REDIRECT_ERROR == "redirect not followed: fix the stream's endpoint_url"
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_back_off_statuses_are_retried_with_the_receivers_retry_after(status: int) -> None:
    outcome = classify(status, b"", None, retry_after=42.0)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.retry_after == 42.0
    assert outcome.error is None


def test_413_is_permanent_because_the_same_bytes_stay_too_large() -> None:
    outcome = classify(413, b"too big", "text/plain")
    assert outcome.kind is OutcomeKind.PERMANENT
    assert outcome.err == "payload_too_large"
    assert outcome.description == "too big"


@pytest.mark.parametrize("status", [402, 404, 405, 409, 410, 415, 422, 451])
def test_other_4xx_are_retried(status: int) -> None:
    outcome = classify(status, b"", None, retry_after=5)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [0, 100, 199, 600, 999])
def test_a_status_outside_2xx_to_5xx_is_retried_and_noted(status: int) -> None:
    outcome = classify(status, b"", None)
    assert outcome.kind is OutcomeKind.RETRY
    assert outcome.error == f"unexpected HTTP status {status}"


def test_a_5xx_with_a_json_err_keeps_it_for_the_record() -> None:
    outcome = classify(503, err_body("temporarily_unavailable", "maintenance"), JSON)
    assert outcome.kind is OutcomeKind.RETRY
    assert (outcome.err, outcome.description) == ("temporarily_unavailable", "maintenance")


# --- no response at all --------------------------------------------------------------------------


def test_a_network_failure_is_retried_without_a_status() -> None:
    assert network_failure("timeout") == Outcome(OutcomeKind.RETRY, None, None, None, error="timeout")


def test_a_network_failure_text_is_bounded_and_never_empty() -> None:
    assert network_failure("x\n" * 500).error == ("x " * 150).strip()  # 299 chars, no trailing space
    assert network_failure("").error == "network error"


# --- robustness ----------------------------------------------------------------------------------


@settings(database=None, max_examples=500)
@given(
    status=st.integers(min_value=-1, max_value=1000),
    body=st.one_of(
        st.binary(max_size=5000),
        st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(st.text(max_size=8), st.text())),
        st.just(b"[" * 5000),
        st.just(b'{"err": "invalid_key", "description": "\xff\xfe"}'),
    ),
    content_type=st.one_of(st.none(), st.just(JSON), st.text(max_size=30)),
    retry_after=st.one_of(st.none(), st.floats(allow_nan=False, min_value=0)),
)
def test_classify_never_raises_and_only_2xx_is_delivered(
    status: int, body: bytes, content_type: str | None, retry_after: float | None
) -> None:
    outcome = classify(status, body, content_type, retry_after)
    assert (outcome.kind is OutcomeKind.DELIVERED) == (200 <= status <= 299)
    assert outcome.status == status
    assert outcome.description is None or len(outcome.description) <= DESCRIPTION_MAX
    if outcome.kind is OutcomeKind.PERMANENT:
        assert status in (400, 413)
