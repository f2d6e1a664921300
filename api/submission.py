"""Submitting a job: check the input, store the audio, record the job, enqueue its stages.

Runs in a worker thread (boto3, PyAV and the Celery producer block). Either every step
succeeds, or whatever was written is removed again and the client gets an error: a job is
never left half-created, and never created without being queued.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import redis.exceptions

from api.audio_checks import check_audio
from api.deps import Services
from api.direct_uploads import ready_upload
from api.idempotency import IdempotencyClaim, fingerprint
from api.limits import check_capacity
from shared.errors import (
    AudioTooLong,
    Conflict,
    IdempotencyKeyReused,
    InvalidRequest,
    MissingInput,
    ModelUnavailable,
    ServiceError,
    ServiceUnavailable,
    UnknownModel,
)
from shared.jobs import DEFAULT_TENANT, new_job_id, utcnow
from shared.quota import JOB_RECORD_ALLOWANCE, Reservation, Stored
from shared.schemas import (
    AudioPart,
    EventName,
    JobCreate,
    JobRead,
    JobStatus,
    JobTask,
    JobWebhook,
)
from shared.storage import audio_key, delete_quietly, escape_filename
from shared.tasks import KNOWN_MODELS
from shared.webhook_secrets import WebhookSecretMissing
from shared.webhook_urls import check_webhook_url

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingAudio:
    """An audio file attached to the request, already spooled by the server."""

    stream: BinaryIO
    filename: str | None


def _probe(services: Services, audio: Sequence[IncomingAudio]) -> list[float]:
    """Seconds of each part, after checking each is audio within the limits."""
    settings = services.settings
    seconds: list[float] = []
    for part in audio:
        remaining = settings.max_audio_seconds - sum(seconds)
        seconds.append(check_audio(settings, part.stream, remaining, "audio"))
    if sum(seconds) > settings.max_audio_seconds:
        raise AudioTooLong(f"the audio is longer than {settings.max_audio_seconds:g} s")
    return seconds


def submit_job(
    services: Services,
    options: JobCreate,
    audio: Sequence[IncomingAudio] = (),
    *,
    tenant: str = DEFAULT_TENANT,
    idempotency_key: str | None = None,
) -> JobRead:
    """Create and enqueue a job for `tenant`; raise a ServiceError if the input is bad, a
    limit is reached or a backend is down. With an `idempotency_key` seen before for the same
    request, return that request's job instead."""
    job_id = new_job_id()
    if idempotency_key is None:
        return _create(services, options, audio, tenant, job_id)
    claim = IdempotencyClaim(job_id, fingerprint(options, [part.stream for part in audio]))
    earlier = services.idempotency.claim(tenant, idempotency_key, claim)
    if earlier is not None:
        if earlier.fingerprint != claim.fingerprint:
            raise IdempotencyKeyReused(field="Idempotency-Key")
        job = services.jobs.get(earlier.job_id, tenant)
        if job is None:
            # Being created now, or its gateway died doing so: the claim expires soon.
            wait = services.idempotency.seconds_left(tenant, idempotency_key)
            raise Conflict(
                "a request with this Idempotency-Key is still being processed",
                retry_after=max(1, wait),
            )
        return job
    try:
        job = _create(services, options, audio, tenant, job_id)
    except BaseException:
        services.idempotency.release(tenant, idempotency_key)
        raise
    if not services.idempotency.confirm(tenant, idempotency_key, claim):
        logger.warning(
            "the Idempotency-Key was claimed again while this job was being created",
            extra={"job_id": job.id},
        )
    return job


def _create(
    services: Services,
    options: JobCreate,
    audio: Sequence[IncomingAudio],
    tenant: str,
    job_id: str,
) -> JobRead:
    settings = services.settings
    model = options.model or settings.model
    if model not in KNOWN_MODELS:
        raise UnknownModel(
            f"unknown model {model!r}; known: {', '.join(KNOWN_MODELS)}", field="model"
        )
    if not services.workers.live_workers(model):
        # Refused rather than queued: with no worker alive it would wait forever.
        raise ModelUnavailable(f"no live worker serves model {model!r}", field="model")
    webhook = _webhook(services, options, tenant)
    uploaded = _resolve_uploads(services, options, tenant)
    if not audio and not uploaded and not options.question:
        raise MissingInput("send an `audio` file, `upload_ids`, a `question`, or some of them")
    if options.task is JobTask.TRANSCRIBE and not audio and not uploaded:
        raise MissingInput("a transcription needs audio", field="audio")
    max_new_tokens = options.max_new_tokens or settings.max_new_tokens_for(model)
    if max_new_tokens > settings.max_new_tokens_limit:
        raise InvalidRequest(
            f"max_new_tokens must be at most {settings.max_new_tokens_limit}",
            field="max_new_tokens",
        )

    check_capacity(
        services.redis,
        services.jobs,
        tenant,
        model,
        settings.max_active_jobs_per_tenant,
        settings.max_queue_depth,
    )
    seconds = _probe(services, audio)
    parts = [
        AudioPart(key=audio_key(job_id, i), filename=escape_filename(part.filename), seconds=s)
        for i, (part, s) in enumerate(zip(audio, seconds, strict=True))
    ]
    if sum(part.seconds for part in parts + uploaded) > settings.max_audio_seconds:
        raise AudioTooLong(f"the audio is longer than {settings.max_audio_seconds:g} s")
    job = JobRead(
        id=job_id,
        status=JobStatus.QUEUED,
        model=model,
        task=options.task,
        transcription_prompt=options.transcription_prompt,
        word_timestamps=options.word_timestamps,
        webhook=webhook,
        question=options.question,
        language=options.language,
        max_new_tokens=max_new_tokens,
        temperature=options.temperature or 0.0,
        has_audio=bool(parts or uploaded),
        audio=parts + uploaded,
        history=options.history,
        created_at=utcnow(),
    )
    reservations = _reserve_storage(services, tenant, options, audio)
    stored: list[str] = []
    try:
        for part, incoming in zip(parts, audio, strict=True):
            services.store.put(
                part.key, incoming.stream, {"original-filename": part.filename or ""}
            )
            stored.append(part.key)
        services.expiry.track(*stored)
        services.jobs.create(job, tenant)
        services.events.publish(job.id, EventName.STATUS, {"status": job.status.value})
        services.queue.enqueue(job)
    except Exception as exc:
        _undo(services, job, stored)
        services.quota.release(*reservations)
        # Redis's own errors (down, full) get their own problems.
        if isinstance(exc, ServiceError | redis.exceptions.RedisError):
            raise
        raise ServiceUnavailable(f"the job could not be queued: {exc}") from exc
    try:
        services.jobs.sent(job.id)
    except Exception as exc:
        # The job is queued; at worst the maintenance loop queues it once more, and the second
        # delivery finds its stages done or running and skips them.
        logger.warning("marking the job as queued failed: %s", exc, extra={"job_id": job.id})
    logger.info(
        "job submitted (model %s, %d audio parts)", model, len(parts), extra={"job_id": job.id}
    )
    return job


def _webhook(services: Services, options: JobCreate, tenant: str) -> JobWebhook | None:
    """The job's webhook, once its URL passed the address policy and the tenant has a secret
    to sign deliveries with."""
    if options.webhook is None:
        if "webhook_events_filter" in options.model_fields_set:
            raise InvalidRequest("webhook_events_filter needs a webhook", field="webhook")
        return None
    if not services.webhook_secrets.exists(tenant):
        raise WebhookSecretMissing(
            "this API key's tenant has no webhook secret yet: make one with "
            "POST /v1/webhooks/secret (`audiochat webhooks secret`)",
            field="webhook",
        )
    check_webhook_url(options.webhook, services.settings.webhooks.allowed_networks)
    events: list[str] = list(dict.fromkeys(options.webhook_events_filter))
    return JobWebhook(url=options.webhook, events=events)


def _reserve_storage(
    services: Services, tenant: str, options: JobCreate, audio: Sequence[IncomingAudio]
) -> list[Reservation | None]:
    """Count the job's text and audio against the tenant's quotas (StorageQuotaExceeded if
    either is full); nothing is written before this has passed."""
    text = len(options.model_dump_json(exclude_defaults=True)) + JOB_RECORD_ALLOWANCE
    records = services.quota.reserve(tenant, Stored.RECORDS, text)
    try:
        size = sum(stream_size(part.stream) for part in audio)
        return [records, services.quota.reserve(tenant, Stored.AUDIO, size) if size else None]
    except BaseException:
        services.quota.release(records)
        raise


def stream_size(stream: BinaryIO) -> int:
    """The length of a seekable stream, which is left at its start."""
    size = stream.seek(0, 2)
    stream.seek(0)
    return size


def _resolve_uploads(services: Services, options: JobCreate, tenant: str) -> list[AudioPart]:
    """The job's audio parts from earlier uploads, used in place; each upload the job or its
    history names must exist and be the tenant's (UploadNotFound otherwise), and a presigned
    one is checked now, like audio sent with the job."""
    records = [
        ready_upload(services, services.uploads.require(i, tenant, "upload_ids"), "upload_ids")
        for i in options.upload_ids
    ]
    for turn in options.history:
        if turn.upload_id is not None:
            record = services.uploads.require(turn.upload_id, tenant, "history")
            ready_upload(services, record, "history")
    return [AudioPart(key=r.key, filename=r.filename, seconds=r.seconds or 0.0) for r in records]


def _undo(services: Services, job: JobRead, stored_keys: list[str]) -> None:
    """Best-effort removal of a job that could not be queued."""
    try:
        services.jobs.delete(job.id)
    except Exception:
        logger.exception(
            "removing the record after a failed submit failed", extra={"job_id": job.id}
        )
    for key in stored_keys:
        delete_quietly(services.store, key, "a failed submit", job_id=job.id)
