"""Enqueueing jobs by task name; the gateway never imports worker code."""

from __future__ import annotations

from celery import Celery, chain

from shared.config import Settings
from shared.schemas import JobRead, JobTask
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
        """Send the job's stages: transcribe if there is audio, answer unless transcribing only."""
        queue = queue_for_model(job.model)
        names = ([TRANSCRIBE_TASK] if job.has_audio else []) + (
            [ANSWER_TASK] if job.task is JobTask.ANSWER else []
        )
        stages = [
            self._celery.signature(name, args=(job.id,), queue=queue, immutable=True)
            for name in names
        ]
        if len(stages) > 1:
            chain(*stages).apply_async(retry=False)
        else:
            stages[0].apply_async(retry=False)

    def close(self) -> None:
        self._celery.close()
