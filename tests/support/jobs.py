"""Job records made directly in Redis, for tests that start from a job a gateway would have
recorded (no gateway in the test, or a state a gateway cannot be made to leave)."""

from __future__ import annotations

from typing import Any

from shared.jobs import new_job_id, utcnow
from shared.schemas import JobRead, JobStatus


def typed_job(status: JobStatus = JobStatus.QUEUED, question: str = "q", **fields: Any) -> JobRead:
    """A typed question for the echo model, as the gateway records it on submit."""
    values: dict[str, Any] = {
        "id": new_job_id(),
        "status": status,
        "model": "echo",
        "question": question,
        "max_new_tokens": 8,
        "temperature": 0.0,
        "has_audio": False,
        "created_at": utcnow(),
        **fields,
    }
    return JobRead(**values)
