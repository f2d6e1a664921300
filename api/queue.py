"""Enqueueing jobs by task name; the gateway never imports worker code."""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import Celery, chain

from api.redis_clients import REDIS_TIMEOUT_SECONDS
from shared.celery_settings import producer_settings
from shared.config import Settings
from shared.schemas import JobRead, JobTask
from shared.tasks import ANSWER_TASK, TRANSCRIBE_TASK, queue_for_model


class JobQueue:
    """A Celery producer that sends `transcribe → answer` chains to the job's model queue."""

    def __init__(self, settings: Settings) -> None:
        self._celery = Celery("audiochat-gateway", set_as_current=False)
        # Sending a task fails fast, like every other Redis call of the gateway.
        self._celery.conf.update(producer_settings(settings, REDIS_TIMEOUT_SECONDS))

    def enqueue(self, job: JobRead, from_stage: str = "transcribe") -> None:
        """Send the job's stages: transcribe if there is audio, answer unless transcribing only.
        `from_stage="answer"` sends the answer stage alone (a requeue after a worker died)."""
        queue = queue_for_model(job.model)
        names = ([TRANSCRIBE_TASK] if job.has_audio and from_stage == "transcribe" else []) + (
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

    def remove_queued(self, client: redis.Redis, job: JobRead) -> int:
        """Take the job's waiting tasks off its model's queue; returns how many were removed.

        A task already delivered to a worker is not in the list any more; the worker skips it
        when it sees the job has ended.
        """
        queue = queue_for_model(job.model)
        removed = 0
        waiting: Any = client.lrange(queue, 0, -1)
        for raw in waiting:
            try:
                headers = json.loads(raw).get("headers", {})
            except ValueError:
                continue
            if job.id in str(headers.get("argsrepr", "")):
                removed += int(client.lrem(queue, 1, raw))
        return removed

    def close(self) -> None:
        self._celery.close()
