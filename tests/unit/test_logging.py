"""Log lines as text or JSON, each naming its job: from `extra=` or from `job_context`."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator

import pytest

from shared.logging import JobIdFilter, JsonFormatter, TextFormatter, job_context


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("worker.pipeline", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    JobIdFilter().filter(record)
    return record


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    """Records that reach a handler with the job filter, as `configure_logging` sets it up."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(JobIdFilter())
    logger = logging.getLogger("audiochat-test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)


def test_json_line_has_the_job_id_from_extra_and_other_fields() -> None:
    line = JsonFormatter().format(_record("answered in 1.50 s", job_id="abc", seconds=1.5))
    entry = json.loads(line)
    assert entry["message"] == "answered in 1.50 s"
    assert entry["job_id"] == "abc"
    assert entry["seconds"] == 1.5
    assert entry["level"] == "INFO" and entry["logger"] == "worker.pipeline"
    assert entry["time"].endswith("+00:00")


def test_a_line_logged_in_a_job_context_names_the_job(captured: list[logging.LogRecord]) -> None:
    logger = logging.getLogger("audiochat-test")
    with job_context("job-1"):
        logger.info("inside")
        logger.info("own id wins", extra={"job_id": "job-2"})
    logger.info("outside")
    assert [getattr(r, "job_id", None) for r in captured] == ["job-1", "job-2", None]


def _failure(**extra: object) -> logging.LogRecord:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("failed", **extra)
        record.exc_info = sys.exc_info()
    return record


def test_json_line_carries_the_traceback() -> None:
    entry = json.loads(JsonFormatter().format(_failure()))
    assert "RuntimeError: boom" in entry["exception"]
    assert entry["job_id"] is None


def test_text_line_ends_with_fields_and_job_id() -> None:
    record = _record("submitted", job_id="abc", model="echo", data={"args": "('abc',)"})
    text = TextFormatter().format(record)
    assert text.endswith("INFO worker.pipeline: submitted model=echo job_id=abc")
    assert TextFormatter().format(_record("plain")).endswith("worker.pipeline: plain")


def test_text_traceback_stays_below_its_line() -> None:
    first, *rest = TextFormatter().format(_failure(job_id="abc")).splitlines()
    assert first.endswith("failed job_id=abc")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: boom"
