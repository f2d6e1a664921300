"""Submitting a job: check the input, store the audio, record the job, enqueue its stages.

Runs in a worker thread (boto3, PyAV and the Celery producer block). Either every step
succeeds, or whatever was written is removed again and the client gets an error: a job is
never left half-created, and never created without being queued.
"""

from __future__ import annotations

import logging
from typing import BinaryIO

from api.deps import Services
from shared.errors import (
    InvalidAudio,
    InvalidRequest,
    MissingInput,
    ServiceError,
    ServiceUnavailable,
    UnknownModel,
    UploadTooLarge,
)
from shared.jobs import new_job_id, utcnow
from shared.media import probe_audio
from shared.schemas import EventName, JobCreate, JobRead, JobStatus
from shared.storage import audio_key, escape_filename
from shared.tasks import KNOWN_MODELS

logger = logging.getLogger(__name__)


def _size(stream: BinaryIO) -> int:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return size


def submit_job(
    services: Services,
    options: JobCreate,
    audio: BinaryIO | None = None,
    filename: str | None = None,
) -> JobRead:
    """Create and enqueue a job; raise a ServiceError if the input is bad or a backend is down."""
    settings = services.settings
    model = options.model or settings.model
    if model not in KNOWN_MODELS:
        raise UnknownModel(
            f"unknown model {model!r}; known: {', '.join(KNOWN_MODELS)}", field="model"
        )
    if audio is None and not options.question:
        raise MissingInput("send an `audio` file, a `question`, or both")
    max_new_tokens = options.max_new_tokens or settings.default_max_new_tokens
    if max_new_tokens > settings.max_new_tokens_limit:
        raise InvalidRequest(
            f"max_new_tokens must be at most {settings.max_new_tokens_limit}",
            field="max_new_tokens",
        )

    audio_seconds = None
    if audio is not None:
        size = _size(audio)
        if size > settings.max_upload_bytes:
            raise UploadTooLarge(f"the upload is larger than {settings.max_upload_bytes} bytes")
        if size == 0:
            raise InvalidAudio("the audio file is empty")
        audio_seconds = round(probe_audio(audio, settings.max_audio_seconds).duration_seconds, 3)
        audio.seek(0)

    job = JobRead(
        id=new_job_id(),
        status=JobStatus.QUEUED,
        model=model,
        question=options.question,
        language=options.language,
        max_new_tokens=max_new_tokens,
        temperature=options.temperature or 0.0,
        has_audio=audio is not None,
        audio_filename=escape_filename(filename) if audio is not None else None,
        audio_seconds=audio_seconds,
        created_at=utcnow(),
    )
    if audio is not None:
        metadata = {"original-filename": job.audio_filename or ""}
        services.store.put(audio_key(job.id), audio, metadata)
    try:
        services.jobs.create(job)
        services.events.publish(job.id, EventName.STATUS, {"status": job.status.value})
        services.queue.enqueue(job)
    except Exception as exc:
        _undo(services, job)
        if isinstance(exc, ServiceError):
            raise
        raise ServiceUnavailable(f"the job could not be queued: {exc}") from exc
    logger.info("job_id=%s submitted (model %s, audio %s s)", job.id, model, audio_seconds)
    return job


def _undo(services: Services, job: JobRead) -> None:
    """Best-effort removal of a job that could not be queued."""
    try:
        services.jobs.delete(job.id)
    except Exception:
        logger.exception("job_id=%s: removing the record after a failed submit failed", job.id)
    if job.has_audio:
        try:
            services.store.delete(audio_key(job.id))
        except Exception:
            logger.exception("job_id=%s: removing the audio after a failed submit failed", job.id)
