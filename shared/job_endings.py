"""Ending a job: the one place that writes a final state and publishes the closing events.

Used by the worker's stages, the gateway's cancel route and the reaper alike, so every ended
job looks the same to its clients: an `error` event when it failed, then `status` and `done`.
"""

from __future__ import annotations

from typing import Any

from shared.errors import ServiceError
from shared.events import EventPublisher
from shared.jobs import JobRepository, utcnow
from shared.schemas import EventName, JobError, JobStatus


def publish_end(events: EventPublisher, job_id: str, status: JobStatus) -> None:
    """The closing events of a job that has just ended with `status`."""
    events.publish(job_id, EventName.STATUS, {"status": status.value})
    events.publish(job_id, EventName.DONE, {"status": status.value})


def end_job(
    jobs: JobRepository,
    events: EventPublisher,
    job_id: str,
    status: JobStatus,
    **fields: Any,
) -> bool:
    """Move a job that has not ended to a final `status`; False if it had already ended."""
    if not jobs.transition(job_id, status, finished_at=utcnow(), **fields):
        return False
    publish_end(events, job_id, status)
    return True


def fail_job(jobs: JobRepository, events: EventPublisher, job_id: str, error: ServiceError) -> bool:
    """Fail a job with the error's code and message; False if it had already ended."""
    record = JobError(code=error.code, message=error.message)
    if not jobs.transition(job_id, JobStatus.FAILED, error=record, finished_at=utcnow()):
        return False
    events.publish(job_id, EventName.ERROR, record.model_dump())
    publish_end(events, job_id, JobStatus.FAILED)
    return True
