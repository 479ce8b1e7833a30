"""Subject identifiers, as the hub uses them: the library's rules plus the hub's own bits.

The rules (formats, validation, canonical keys, matching) are :mod:`receivers.subjects`, the
one implementation shared with every receiver; hub modules import them from there. What is
the hub's: validation refusing with :class:`~hub.errors.InvalidEvent` (400
``invalid_request``), and each stream's implicit subject (R-SUB-11).
"""

from __future__ import annotations

from typing import Any

from hub.errors import InvalidEvent
from receivers import subjects as vocabulary
from receivers.subjects import InvalidSubject


def validate_subject(obj: Any, *, allow_complex: bool = True, path: str = "subject") -> dict[str, Any]:
    """:func:`receivers.subjects.validate_subject`, refusing with :class:`InvalidEvent`."""
    try:
        return vocabulary.validate_subject(obj, allow_complex=allow_complex, path=path)
    except InvalidSubject as exc:
        raise InvalidEvent(str(exc)) from None


def stream_subject(stream_id: str) -> dict[str, Any]:
    """The stream's own subject, implicit on every stream (R-SUB-11, R-SSFEV-1/2)."""
    return {"format": "opaque", "id": stream_id}
