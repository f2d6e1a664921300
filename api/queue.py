"""Enqueueing jobs by task name; the gateway never imports worker code."""

from __future__ import annotations

from celery import Celery

from shared.config import Settings
from shared.schemas import JobRead
from shared.tasks import ANSWER_TASK, TRANSCRIBE_TASK, queue_for_model


class JobQueue:
    """A Celery producer that sends `transcribe → answer` chains to the job's model queue."""

    def __init__(self, settings: Settings) -> None:
        self._celery = Celery("audiochat-gateway", set_as_current=False)
        self._celery.conf.update(
            broker_url=settings.redis_url,
            broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
            broker_connection_timeout=2,
            broker_connection_retry=False,
            task_serializer="json",
            task_ignore_result=True,
        )

    def enqueue(self, job: JobRead) -> None:
        """Send the job's stages; a text-only job has the answer stage only."""
        queue = queue_for_model(job.model)
        answer = self._celery.signature(ANSWER_TASK, args=(job.id,), queue=queue, immutable=True)
        if job.has_audio:
            transcribe = self._celery.signature(
                TRANSCRIBE_TASK, args=(job.id,), queue=queue, immutable=True
            )
            (transcribe | answer).apply_async(retry=False)
        else:
            answer.apply_async(retry=False)

    def close(self) -> None:
        self._celery.close()
