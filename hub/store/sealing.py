"""Sealing secrets in stored records (hub.keys.secrets): the fields, and a no-op default.

Stores call :func:`seal_stream` / :func:`open_stream` and :func:`seal_upstream` /
:func:`open_upstream` around their JSON records; the sealer is set once per process
(``Store.use_secrets``) and defaults to :class:`Plain`, which stores values as they are.
"""

from __future__ import annotations

from typing import Any, Protocol


class Sealer(Protocol):
    def seal(self, value: str) -> str: ...

    def open(self, value: str) -> str: ...


class Plain:
    """No sealing (stores built without a secrets key, e.g. in unit tests)."""

    def seal(self, value: str) -> str:
        return value

    def open(self, value: str) -> str:
        return value


def _nested(record: dict[str, Any], outer: str, field: str, change: Any) -> dict[str, Any]:
    inner = record.get(outer)
    if not isinstance(inner, dict) or not isinstance(inner.get(field), str):
        return record
    return {**record, outer: {**inner, field: change(inner[field])}}


def seal_stream(record: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    return _nested(record, "delivery", "authorization_header", sealer.seal)


def open_stream(record: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    return _nested(record, "delivery", "authorization_header", sealer.open)


def seal_upstream(config: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    return _nested(config, "token_source", "token", sealer.seal)


def open_upstream(config: dict[str, Any], sealer: Sealer) -> dict[str, Any]:
    return _nested(config, "token_source", "token", sealer.open)
