"""Which queued SETs of one push stream may be on the wire together.

A stream's SETs are split into lanes by an ordering key; a lane sends one SET at a time,
oldest first, and a SET being retried blocks the rest of its lane only. The key is the
SET's subject (``push_order = "subject"``, the default) or one key for the whole stream
(``"stream"``: strict queue order, one SET in flight).

Why per subject is enough: RFC 8935 promises no order, and SSF asks for one only among
events about the same principal (R-STATUS-5: held events "about the same principal" go out
in the order they were generated; R-VERIFY-3: delivery "is not ordered relative to other
queued events"). The subject is the SET's ``sub_id`` (R-SET-11: every SET the hub issues
has one; stream-level SETs name the stream), compared as canonical JSON, so the same
identifier always lands in the same lane; two different identifiers of one person (an
email and an ``iss_sub``) are two subjects, as they are in routing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Iterable
from enum import Enum

from hub.core.model import QueuedSet


class PushOrder(Enum):
    SUBJECT = "subject"  # per subject: SETs about one subject never overtake each other
    STREAM = "stream"  # per stream: queue order, one SET in flight


STREAM_LANE = ""  # the lane of every SET under "stream" order (and of a SET without sub_id)


def subject_key(set_jwt: str) -> str:
    """The SET's ``sub_id`` as canonical JSON; :data:`STREAM_LANE` if it has none that can
    be read (never for a SET the hub signed, but a lane must not depend on it)."""
    try:
        segment = set_jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        sub_id = claims["sub_id"]
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error):
        return STREAM_LANE
    return json.dumps(sub_id, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Lanes:
    """The SETs of one stream read from its queue and not on the wire, by lane, each lane in
    queue order. No I/O: the push worker fills it from reads and takes SETs to send."""

    def __init__(self, order: PushOrder) -> None:
        self.order = order
        self._lanes: dict[str, deque[QueuedSet]] = {}
        self._keys: dict[str, str] = {}  # jti -> lane key (parsing a SET once per stay)

    def key(self, item: QueuedSet) -> str:
        if self.order is PushOrder.STREAM:
            return STREAM_LANE
        key = self._keys.get(item.jti)
        if key is None:
            key = self._keys[item.jti] = subject_key(item.set_jwt)
        return key

    def __len__(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    def reset(self, items: Iterable[QueuedSet], keep_keys: Iterable[str] = ()) -> None:
        """Replace the contents with ``items`` (queue order), e.g. after a fresh read;
        ``keep_keys``: jtis whose lane key must stay cached (SETs on the wire)."""
        lanes: dict[str, deque[QueuedSet]] = {}
        keys = {jti: self._keys[jti] for jti in keep_keys if jti in self._keys}
        for item in items:
            key = self.key(item)
            keys[item.jti] = key
            lanes.setdefault(key, deque()).append(item)
        self._lanes, self._keys = lanes, keys

    def put_back(self, item: QueuedSet) -> None:
        """``item`` was sent and must be tried again: first in its lane, ahead of later SETs."""
        self._lanes.setdefault(self.key(item), deque()).appendleft(item)

    def forget(self, jti: str) -> None:
        """The SET ``jti`` left the queue: drop its cached key."""
        self._keys.pop(jti, None)

    def take(self, now: float, busy: set[str]) -> tuple[str, QueuedSet] | None:
        """The oldest due SET at the head of a lane whose key is not in ``busy``."""
        for key, lane in self._lanes.items():
            if key in busy or lane[0].next_attempt_at > now:
                continue
            item = lane.popleft()
            if not lane:
                del self._lanes[key]
            return key, item
        return None

    def next_due(self, busy: set[str]) -> float | None:
        """When the earliest blocked lane (not in ``busy``) may send again; None if none is waiting."""
        times = [lane[0].next_attempt_at for key, lane in self._lanes.items() if key not in busy]
        return min(times) if times else None
