"""Routing: which streams an event goes to (R-SUB-10, R-DISC-4 default_subjects, R-STATUS-4..6).

``candidate_streams`` answers "whose subjects admit this event?"; ``route`` then keeps the
streams that want the event type and splits them by status.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from hub.core.model import POLL_METHOD, Delivery, Status, Stream, SubjectEntry
from hub.core.routing import Route, candidate_streams, route
from receivers.events import CAEP_BASE
from receivers.subjects import subject_key

REVOKED = CAEP_BASE + "session-revoked"
CRED_CHANGE = CAEP_BASE + "credential-change"

ALICE = {"format": "email", "email": "alice@example.com"}
BOB = {"format": "email", "email": "bob@example.com"}
ACME = {"format": "opaque", "id": "tenant-acme"}
ALICE_AT_ACME = {"format": "complex", "user": ALICE, "tenant": ACME}


def included(stream_id: str, subject: dict[str, Any]) -> SubjectEntry:
    return SubjectEntry(stream_id, subject_key(subject), subject)


def excluded(stream_id: str, subject: dict[str, Any]) -> SubjectEntry:
    """A subject removed from an ALL stream."""
    return SubjectEntry(stream_id, subject_key(subject), subject, excluded=True)


def stream(
    stream_id: str,
    *,
    events: tuple[str, ...] = (REVOKED,),
    status: Status = Status.ENABLED,
    created: float = 0.0,
) -> Stream:
    return Stream(
        stream_id=stream_id,
        owner="agent",
        iss="https://hub.example.com",
        aud="agent",
        delivery=Delivery(POLL_METHOD, f"https://hub.example.com/ssf/poll/{stream_id}"),
        events_delivered=events,
        status=status,
        created_at=created,
    )


def ids(streams: tuple[Stream, ...]) -> list[str]:
    return [s.stream_id for s in streams]


# --- candidate_streams: subjects (R-SUB-10, R-SUBJ-*, default_subjects) ------------------------


def test_nothing_matches_without_registrations_or_all_streams() -> None:
    assert candidate_streams(ALICE, [], []) == set()


def test_a_stream_that_added_the_subject_is_a_candidate() -> None:  # R-SUBJ-1
    entries = [included("s-alice", ALICE), included("s-bob", BOB)]
    assert candidate_streams(ALICE, entries, []) == {"s-alice"}


def test_a_registered_complex_member_acts_as_a_wildcard_for_the_others() -> None:  # R-SUB-10
    entries = [included("s-tenant", ACME), included("s-bob", BOB)]
    assert candidate_streams(ALICE_AT_ACME, entries, []) == {"s-tenant"}
    # ...and the registration of a {user, tenant} pair still gets events about the user alone.
    assert candidate_streams(ALICE, [included("s-pair", ALICE_AT_ACME)], []) == {"s-pair"}


def test_an_all_stream_gets_subjects_it_never_added() -> None:  # R-DISC-4 default_subjects=ALL
    assert candidate_streams(BOB, [included("s-alice", ALICE)], ["s-all"]) == {"s-all"}


def test_an_all_stream_does_not_get_a_subject_it_removed() -> None:  # R-DISC-4: R can prune with remove
    entries = [excluded("s-all", ALICE)]
    assert candidate_streams(ALICE, entries, ["s-all"]) == set()
    assert candidate_streams(BOB, entries, ["s-all"]) == {"s-all"}


def test_removing_a_tenant_from_an_all_stream_removes_its_users_events() -> None:  # R-SUB-10 wildcard
    assert candidate_streams(ALICE_AT_ACME, [excluded("s-all", ACME)], ["s-all"]) == set()


def test_an_exclusion_only_affects_its_own_stream() -> None:
    entries = [excluded("s-all-1", ALICE)]
    assert candidate_streams(ALICE, entries, ["s-all-1", "s-all-2"]) == {"s-all-2"}


def test_an_exclusion_does_not_include_a_stream() -> None:
    assert candidate_streams(ALICE, [excluded("s-none", ALICE)], []) == set()


# --- route: events_delivered and status (R-STREAM-3, R-STATUS-4..6) -----------------------------


def test_route_skips_streams_that_do_not_deliver_the_event_type() -> None:  # R-STREAM-3
    streams = [
        stream("wants", events=(REVOKED,)),
        stream("other", events=(CRED_CHANGE,)),
        stream("none", events=()),
    ]
    assert ids(route(REVOKED, streams).deliver) == ["wants"]
    assert route(REVOKED, streams).dropped == ()


def test_route_drops_for_disabled_streams_and_holds_for_paused_ones() -> None:  # R-STATUS-4, -5, -6
    result = route(
        REVOKED,
        [
            stream("on", status=Status.ENABLED, created=1),
            stream("held", status=Status.PAUSED, created=2),
            stream("off", status=Status.DISABLED, created=3),
        ],
    )
    assert ids(result.deliver) == ["on", "held"]
    assert ids(result.dropped) == ["off"]


def test_a_disabled_stream_that_does_not_want_the_event_is_not_counted_as_dropped() -> None:
    result = route(REVOKED, [stream("off", events=(CRED_CHANGE,), status=Status.DISABLED)])
    assert result == Route(deliver=(), dropped=())


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_route_order_is_by_creation_time_then_stream_id_whatever_the_input_order(
    order: tuple[int, ...],
) -> None:
    streams = [stream("c", created=5), stream("a", created=9), stream("b", created=5), stream("z", created=1)]
    result = route(REVOKED, [streams[i] for i in order])
    assert ids(result.deliver) == ["z", "b", "c", "a"]


def test_route_accepts_any_iterable_once() -> None:
    result = route(REVOKED, (s for s in [stream("g1"), stream("g2", status=Status.DISABLED)]))
    assert (ids(result.deliver), ids(result.dropped)) == (["g1"], ["g2"])
