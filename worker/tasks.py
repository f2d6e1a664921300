"""Celery tasks: thin shells that hand a job id to the pipeline."""

from __future__ import annotations

from celery import Celery

from shared.logging import job_context
from shared.tasks import ANSWER_TASK, TRANSCRIBE_TASK
from worker.pipeline import JobPipeline


def register_tasks(app: Celery, pipeline: JobPipeline) -> None:
    """Register the stage tasks on `app`, all running on `pipeline`'s model."""

    @app.task(name=TRANSCRIBE_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def transcribe(job_id: str) -> None:
        # Every line logged while the stage runs (the model's and Celery's too) names the job.
        with job_context(job_id):
            pipeline.transcribe(job_id)

    @app.task(name=ANSWER_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def answer(job_id: str) -> None:
        with job_context(job_id):
            pipeline.answer(job_id)
