"""Log lines an operator can act on: one line per event, with stable keys, as text or JSON.

:func:`event` writes one line for one thing an operator cares about (a failed push attempt, a
stream paused, an ingest refusal, a key rotation, the store going away and coming back). The
event name and its fields are the stable part: alert rules and log queries use them, and they
change only with a note in the README. Everything else the hub logs is free-form.

``log_format = text`` (the default) renders ``... WARNING hub.push: push_attempt_failed
stream_id=s1 host=agent.example attempt=3 ...``; ``json`` renders one JSON object per line with
``ts``, ``level``, ``logger``, ``event`` (or ``message``) and the fields. Under ``serve
--processes`` every line also names the hub process that wrote it (``process``). Callers never pass
tokens, push secrets or SET bodies; values are cut at 300 characters.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FIELD_LIMIT = 300
_EVENT = "ssf_event"
_FIELDS = "ssf_fields"


def event(logger: logging.Logger, level: int, name: str, /, **fields: Any) -> None:
    """Log the operator event ``name`` with ``fields`` as its keys."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={_EVENT: name, _FIELDS: fields})


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The event fields of a record written by :func:`event` (empty for other records)."""
    found = getattr(record, _FIELDS, None)
    return dict(found) if isinstance(found, dict) else {}


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > FIELD_LIMIT:
        return value[:FIELD_LIMIT] + "..."
    return value


def _text_value(value: Any) -> str:
    value = _short(value)
    text = "-" if value is None else str(value)
    if not text or any(c.isspace() or c in '"=' for c in text) or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``; ``process=N`` last under ``serve --processes``."""

    def __init__(self, process: int | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = fields_of(record)
        if self.process is not None:
            fields["process"] = self.process
        if fields:
            head, sep, tail = line.partition("\n")  # keep a traceback after the key=value pairs
            head += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
            line = head + sep + tail
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``process`` (its seat) under ``serve --processes``."""

    def __init__(self, process: int | None = None) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        name = getattr(record, _EVENT, None)
        if name is not None:
            out["event"] = name
            out.update({k: _short(v) for k, v in fields_of(record).items()})
        else:
            out["message"] = record.getMessage()
        if self.process is not None:
            out["process"] = self.process
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(level: str, log_format: str, *, process: int | None = None) -> logging.Handler:
    """Send every log line (the hub's, uvicorn's, libraries') to stderr in ``log_format``;
    ``process``: which hub process of ``serve --processes`` writes them."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(process) if log_format == "json" else TextFormatter(process))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # apscheduler announces every job it adds at INFO ("Adding job tentatively"): start-up noise.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
    return handler
