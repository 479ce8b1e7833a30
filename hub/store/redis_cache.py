"""Stream records and subject entries read from Redis, kept in this process while it hears
every change to them.

Routing an event and serving a poll read the same few stream records and subject entries
over and over; on Redis each read is a round trip. This cache keeps what was read, and is
emptied of a stream's entries whenever that stream's record or subjects change on any
replica: every script that changes them PUBLISHes the stream id on the store's change
channel (``RedisKeys.changes_channel``) in the same atomic step, and the wake-up relay
(``hub.delivery.wakeup_redis``), which holds this process's one subscription, hands it to
:meth:`RecordCache.changed`. A write in this process empties the entries at once.

It is used only while that subscription is live (:meth:`RecordCache.connected`, called once
Redis confirmed it): when it is lost the cache empties and every read goes to Redis until
it is back, so a change published meanwhile cannot be missed. A read that a change
overtook (the change arrived while the read was in flight) is not kept (``generation``).
Entries also expire after ``ttl`` seconds, a bound on staleness should a node of a cluster
not relay a message. So another replica's change is seen here within the time the message
takes, milliseconds; a stream or subject that is new is never missed (it cannot be cached
before it exists), and what may lag by that much is a pause, a delete or a removal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from hub.core.model import Stream, SubjectEntry

CACHE_TTL = 5.0  # seconds; the backstop, not the usual bound (pub/sub is)
MAX_STREAMS = 50_000  # past this many entries the cache starts again, empty
MAX_SUBJECTS = 200_000


class RecordCache:
    def __init__(self, *, ttl: float = CACHE_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.live = False  # True while the change channel's subscription is confirmed
        self.generation = 0  # bumped by every change: a read older than one is not kept
        self.hits = 0
        self.misses = 0
        self._streams: dict[str, tuple[float, Stream]] = {}
        # stream id -> subject key -> (read at, index member, entry)
        self._subjects: dict[str, dict[str, tuple[float, str, SubjectEntry]]] = {}
        self._subject_count = 0

    # -- the subscription ------------------------------------------------------------------------
    def connected(self) -> None:
        """The change channel is subscribed (Redis confirmed it): caching may start."""
        self._clear()
        self.live = True

    def disconnected(self) -> None:
        """The subscription is gone: changes may go unheard, so nothing is cached until it is back."""
        self.live = False
        self._clear()

    def forget(self) -> None:
        """A command failed on an outage: what is kept may be stale by now, so read anew (the
        subscription's loss, heard a moment later, turns caching off until Redis is back)."""
        self._clear()

    def changed(self, stream_ids: Iterable[str]) -> None:
        """A stream's record or subjects changed (here, or on another replica)."""
        self.generation += 1
        for stream_id in stream_ids:
            self._streams.pop(stream_id, None)
            self._subject_count -= len(self._subjects.pop(stream_id, {}))

    def _clear(self) -> None:
        self.generation += 1
        self._streams.clear()
        self._subjects.clear()
        self._subject_count = 0

    # -- stream records --------------------------------------------------------------------------
    def stream(self, stream_id: str) -> Stream | None:
        found = self._streams.get(stream_id)
        if found is None or self.clock() - found[0] > self.ttl:
            self.misses += 1
            return None
        self.hits += 1
        return found[1]

    def keep_stream(self, stream: Stream, generation: int) -> None:
        """Keep ``stream``, read when :attr:`generation` was ``generation``, unless a change
        came in since."""
        if not self.live or generation != self.generation:
            return
        if len(self._streams) >= MAX_STREAMS:
            self._streams.clear()
        self._streams[stream.stream_id] = (self.clock(), stream)

    # -- subject entries -------------------------------------------------------------------------
    def subject(self, stream_id: str, key: str, member: str) -> SubjectEntry | None:
        """The entry filed in the subject index as ``member`` (that write's nonce), if kept."""
        found = self._subjects.get(stream_id, {}).get(key)
        if found is None or found[1] != member or self.clock() - found[0] > self.ttl:
            self.misses += 1
            return None
        self.hits += 1
        return found[2]

    def keep_subject(self, entry: SubjectEntry, member: str, generation: int) -> None:
        if not self.live or generation != self.generation:
            return
        if self._subject_count >= MAX_SUBJECTS:
            self._subjects.clear()
            self._subject_count = 0
        entries = self._subjects.setdefault(entry.stream_id, {})
        self._subject_count += entry.key not in entries
        entries[entry.key] = (self.clock(), member, entry)
