"""Which streams an event goes to (SSF §8.1.3 subjects, events_delivered, status).

Routing is an index look-up: the caller fetches only the registrations filed under
the event subject's :func:`~hub.core.subjects.index_keys`, so the cost grows with the
streams that might match, not with the number of streams or subjects in the hub.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.core.model import Status, Stream, SubjectEntry
from receivers.subjects import subjects_match


@dataclass(frozen=True, slots=True)
class Route:
    deliver: tuple[Stream, ...]  # enabled streams, and paused ones (which hold events)
    dropped: tuple[Stream, ...]  # disabled streams: the event is not kept (R-STATUS-6)


def candidate_streams(
    event_subject: Mapping[str, Any],
    candidates: Iterable[SubjectEntry],
    all_subject_streams: Iterable[str],
) -> set[str]:
    """Stream ids whose subjects admit ``event_subject`` (R-SUB-10, R-SUBJ-*)."""
    included: set[str] = set()
    excluded: set[str] = set()
    for entry in candidates:
        if subjects_match(entry.subject, event_subject):
            (excluded if entry.excluded else included).add(entry.stream_id)
    # An ALL stream gets every subject except those the receiver removed from it.
    included.update(sid for sid in all_subject_streams if sid not in excluded)
    return included


def route(event_uri: str, streams: Iterable[Stream]) -> Route:
    """Split the subject-matched streams by whether they want ``event_uri`` and their status."""
    deliver: list[Stream] = []
    dropped: list[Stream] = []
    for stream in sorted(streams, key=lambda s: (s.created_at, s.stream_id)):
        if event_uri not in stream.events_delivered:
            continue
        (dropped if stream.status is Status.DISABLED else deliver).append(stream)
    return Route(tuple(deliver), tuple(dropped))
