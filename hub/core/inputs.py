"""Decoding untrusted input: JSON documents and URLs, with limits, failing only as 400s.

Every route, authenticated or not, reads what a client sent through these functions (or
through the ones that call them), so no input, however odd, reaches a handler as anything but
a value or :class:`~hub.errors.InvalidRequest`:

- :func:`decode_json`: strict JSON (no ``NaN``/``Infinity``), at most :data:`MAX_JSON_DEPTH`
  levels of nesting. Python's parser fails on deep nesting with ``RecursionError``, which is
  not a ``ValueError``; a limit far below it also keeps later walks over the value cheap.
- :func:`parse_url`: ``urlsplit`` raises ``ValueError`` for ``http://[`` and a bad port only
  when ``.port`` is read; both become "not a valid URL".
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import SplitResult, urlsplit

from hub.errors import InvalidRequest

MAX_JSON_DEPTH = 32  # SSF bodies and SET claims nest a handful of levels


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259) though Python's parser accepts them.
    raise ValueError(f"{name} is not valid JSON")


def decode_json(data: bytes | str, *, what: str = "the request body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in ``data``; :class:`InvalidRequest` naming ``what`` when it is not one."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidRequest(f"{what} is not valid JSON ({type(exc).__name__})") from None
    if nesting_exceeds(value, max_depth):
        raise InvalidRequest(f"{what} nests deeper than {max_depth} levels")
    return value


def nesting_exceeds(value: Any, max_depth: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``max_depth`` levels."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_url(value: str, *, what: str) -> SplitResult:
    """``value`` split into its parts; :class:`InvalidRequest` when it cannot be parsed."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number, or out of range, raises only here
    except ValueError:
        raise InvalidRequest(f"{what} is not a valid URL") from None
    return parts
