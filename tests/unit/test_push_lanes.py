"""Which queued SETs of a push stream may be on the wire together (hub.delivery.push.lanes)."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

from hub.core.model import QueuedSet
from hub.delivery.push.lanes import STREAM_LANE, Lanes, PushOrder, subject_key

ALICE = {"format": "email", "email": "alice@example.com"}
BOB = {"format": "email", "email": "bob@example.com"}


def token(claims: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln"


def queued(jti: str, subject: dict[str, Any], next_at: float = 0.0) -> QueuedSet:
    return QueuedSet("s1", jti, token({"jti": jti, "sub_id": subject}), "urn:test", next_attempt_at=next_at)


def test_the_lane_is_the_sub_id_whatever_the_order_of_its_members() -> None:
    reordered = {"email": "alice@example.com", "format": "email"}
    assert subject_key(token({"sub_id": ALICE})) == subject_key(token({"sub_id": reordered}))
    assert subject_key(token({"sub_id": ALICE})) != subject_key(token({"sub_id": BOB}))


def test_a_set_whose_subject_cannot_be_read_shares_the_stream_lane() -> None:
    assert subject_key("not-a-jwt") == STREAM_LANE
    assert subject_key(token({"jti": "x"})) == STREAM_LANE
    assert subject_key("a.!!!.c") == STREAM_LANE


def test_each_lane_gives_its_oldest_set_and_a_busy_lane_gives_nothing() -> None:
    lanes = Lanes(PushOrder.SUBJECT)
    lanes.reset([queued("a1", ALICE), queued("a2", ALICE), queued("b1", BOB)])
    key_a, first = lanes.take(0.0, set()) or ("", None)
    assert first is not None and first.jti == "a1"
    key_b, second = lanes.take(0.0, {key_a}) or ("", None)  # alice has one on the wire
    assert second is not None and second.jti == "b1"
    assert lanes.take(0.0, {key_a, key_b}) is None
    third = lanes.take(0.0, {key_b})
    assert third is not None and third[1].jti == "a2"


def test_a_set_being_retried_holds_back_its_lane_until_it_is_due() -> None:
    lanes = Lanes(PushOrder.SUBJECT)
    lanes.reset([queued("a1", ALICE), queued("a2", ALICE), queued("b1", BOB)])
    _, head = lanes.take(0.0, set()) or ("", None)
    assert head is not None
    lanes.put_back(replace(head, attempts=1, next_attempt_at=5.0))
    taken = lanes.take(1.0, set())
    assert taken is not None and taken[1].jti == "b1"  # alice's a2 waits behind a1
    assert lanes.take(1.0, set()) is None
    assert lanes.next_due(set()) == 5.0
    again = lanes.take(5.0, set())
    assert again is not None and again[1].jti == "a1" and again[1].attempts == 1


def test_stream_order_is_one_lane() -> None:
    lanes = Lanes(PushOrder.STREAM)
    lanes.reset([queued("a1", ALICE), queued("b1", BOB)])
    key, first = lanes.take(0.0, set()) or ("", None)
    assert first is not None and first.jti == "a1"
    assert lanes.take(0.0, {key}) is None
