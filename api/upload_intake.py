"""Storing a recording on its own, for jobs and chat messages to refer to later by id.

Runs in a worker thread (boto3 and PyAV block). The audio is checked like a job's before
anything is written; if the record cannot be written the stored object is removed again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis.exceptions

from api.audio_checks import check_audio
from api.deps import Services
from api.submission import IncomingAudio, stream_size
from shared.errors import ServiceError, ServiceUnavailable
from shared.jobs import utcnow
from shared.quota import Stored
from shared.storage import delete_quietly, escape_filename, upload_key
from shared.upload_records import UploadRecord, new_upload_id

logger = logging.getLogger(__name__)


def store_upload(
    services: Services, tenant: str, audio: IncomingAudio, client_id: str | None = None
) -> UploadRecord:
    """Check, store and record one recording; return its record."""
    settings = services.settings
    stream = audio.stream
    seconds = check_audio(settings, stream, settings.max_audio_seconds, "file")
    size = stream_size(stream)

    upload_id = new_upload_id()
    now = utcnow()
    record = UploadRecord(
        id=upload_id,
        tenant=tenant,
        key=upload_key(upload_id),
        filename=escape_filename(audio.filename),
        bytes=size,
        seconds=seconds,
        client_id=client_id,
        created_at=now,
        expires_at=now + timedelta(seconds=services.settings.job_retention_seconds),
    )
    reservations = [services.quota.reserve(tenant, Stored.AUDIO, size)]
    try:
        text = len(record.model_dump_json())
        reservations.append(services.quota.reserve(tenant, Stored.RECORDS, text))
        services.store.put(record.key, stream, {"original-filename": record.filename or ""})
    except BaseException:
        services.quota.release(*reservations)
        raise
    try:
        services.expiry.track(record.key)
        services.uploads.create(record)
    except Exception as exc:
        delete_quietly(services.store, record.key, "a failed upload")
        services.quota.release(*reservations)
        # Redis's own errors (down, full) get their own problems.
        if isinstance(exc, ServiceError | redis.exceptions.RedisError):
            raise
        raise ServiceUnavailable(f"the upload could not be recorded: {exc}") from exc
    logger.info("upload_id=%s stored (%.1f s, %d bytes)", upload_id, seconds, size)
    return record
