"""An index of items by the subjects they concern, searched with the SSF matching rules.

Every match shares at least one :func:`~receivers.subjects.index_keys` entry, so a lookup
collects candidates by key and confirms each with :func:`~receivers.subjects.subjects_match`;
it never scans every item. Used by the token cache, the revocation list and the policy
decisions. Pure and synchronous.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

from receivers.subjects import Subject, index_keys, subjects_match

__all__ = ["SubjectIndex"]

T = TypeVar("T", bound=Hashable)


class SubjectIndex(Generic[T]):
    def __init__(self) -> None:
        self._subjects: dict[T, tuple[Subject, ...]] = {}
        self._by_key: dict[str, set[T]] = {}
        self._order: dict[T, int] = {}
        self._counter = 0

    def __len__(self) -> int:
        return len(self._subjects)

    def __contains__(self, item: object) -> bool:
        return item in self._subjects

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._subjects))

    def subjects_of(self, item: T) -> tuple[Subject, ...]:
        return self._subjects.get(item, ())

    def add(self, item: T, subjects: Iterable[Subject]) -> None:
        """File ``item`` under ``subjects`` (replacing what it was filed under before)."""
        self.remove(item)
        subjects = tuple(subjects)
        self._subjects[item] = subjects
        self._counter += 1
        self._order[item] = self._counter
        for subject in subjects:
            for key in index_keys(subject):
                self._by_key.setdefault(key, set()).add(item)

    def remove(self, item: T) -> bool:
        subjects = self._subjects.pop(item, None)
        if subjects is None:
            return False
        del self._order[item]
        for subject in subjects:
            for key in index_keys(subject):
                bucket = self._by_key.get(key)
                if bucket is not None:
                    bucket.discard(item)
                    if not bucket:
                        del self._by_key[key]
        return True

    def matching(self, subject: Subject) -> list[T]:
        """Items filed under a subject that matches ``subject``, in insertion order."""
        candidates: set[T] = set()
        for key in index_keys(subject):
            candidates |= self._by_key.get(key, set())
        found = [item for item in candidates if any(subjects_match(s, subject) for s in self._subjects[item])]
        found.sort(key=self._order.__getitem__)
        return found
