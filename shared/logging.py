"""Logging for every audiochat process: one line per event, plain text or JSON, with `job_id`.

Each entry point calls `configure_logging` once. A line about a job carries the job's id as a
field of the record, not as text in the message: either passed as `extra={"job_id": ...}`, or
taken from `job_context(job_id)` for everything logged while a stage of that job runs (lines
from Celery and the model libraries included).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_current_job: ContextVar[str | None] = ContextVar("audiochat_job_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field,
# except uvicorn's copy of its message with terminal colours.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName", "color_message"}


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Within this block, every line logged in this thread or task carries `job_id`."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


def current_job_id() -> str | None:
    """The job whose stage this thread or task is running, if any."""
    return _current_job.get()


class JobIdFilter(logging.Filter):
    """Gives every record a `job_id` attribute: its own, the current job's, or None."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _current_job.get()
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra=` fields other than `job_id`."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and key != "job_id" and not key.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ... job_id=...`, for terminals and log files."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        # Only plain values: a library's structured extras (Celery's `data`) repeat the message.
        extras = [
            f"{key}={value}"
            for key, value in _fields(record).items()
            if isinstance(value, str | int | float | bool)
        ]
        job_id = getattr(record, "job_id", None)
        if job_id:
            extras.append(f"job_id={job_id}")
        if not extras:
            return line
        # The traceback, if any, stays below the line it belongs to.
        first, newline, rest = line.partition("\n")
        return f"{first} {' '.join(extras)}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", None),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    """Send every logger's lines to stderr, as text or as JSON lines; call once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(JobIdFilter())
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
