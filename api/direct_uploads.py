"""Uploads that go straight to the store: a presigned form now, the checks when a job names it.

With the S3 store, `POST /v1/uploads` with JSON hands out a presigned POST form (size-limited by
the policy's `content-length-range`, expiring), and the client sends the file to S3 or MinIO
itself. Nothing is checked then: the store holds whatever arrived. The first job that names
the upload runs the same checks as a direct upload on the stored object (size, format,
duration, the audio probe), with the same problem codes; only if they pass is the object moved
where jobs read it, and only then is the job queued. Runs in a worker thread (boto3, PyAV).
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from api.audio_checks import check_audio
from api.deps import Services
from shared.errors import Conflict, ServiceError, UploadTooLarge
from shared.jobs import utcnow
from shared.quota import Stored
from shared.storage import (
    ObjectNotFound,
    S3Store,
    delete_quietly,
    escape_filename,
    staging_key,
    upload_key,
)
from shared.upload_records import UploadIncomplete, UploadRecord, new_upload_id

logger = logging.getLogger(__name__)


class DirectUploadUnavailable(Conflict):
    code = "direct-upload-unavailable"
    title = "Presigned uploads need the S3 store; send the file in a multipart form instead"


def _s3(services: Services) -> S3Store:
    if not isinstance(services.store, S3Store):
        raise DirectUploadUnavailable(
            "this server keeps audio in a local directory: POST the file as multipart/form-data"
        )
    return services.store


def create_direct_upload(
    services: Services, tenant: str, filename: str | None, declared_bytes: int | None
) -> tuple[UploadRecord, dict[str, Any]]:
    """Record a pending upload and return it with its presigned form (`url`, `fields`). The
    form allows the declared size, else the largest upload, and that much counts against the
    tenant's audio quota from now on: the file lands in the store whether or not a job ever
    names it."""
    settings = services.settings
    store = _s3(services)
    if declared_bytes is not None and declared_bytes > settings.max_upload_bytes:
        raise UploadTooLarge(
            f"the upload is larger than {settings.max_upload_bytes} bytes", field="bytes"
        )
    allowed = declared_bytes or settings.max_upload_bytes
    upload_id = new_upload_id()
    now = utcnow()
    record = UploadRecord(
        id=upload_id,
        tenant=tenant,
        key=upload_key(upload_id),
        status="pending",
        staging_key=staging_key(upload_id),
        filename=escape_filename(filename),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.job_retention_seconds),
    )
    reservations = [services.quota.reserve(tenant, Stored.AUDIO, allowed)]
    try:
        text = len(record.model_dump_json())
        reservations.append(services.quota.reserve(tenant, Stored.RECORDS, text))
        form = store.presigned_post(
            staging_key(upload_id), allowed, settings.direct_upload_expires_seconds
        )
        # Both keys expire with the upload, whether or not the client ever sends the file.
        services.expiry.track(record.key, staging_key(upload_id))
        services.uploads.create(record)
    except BaseException:
        services.quota.release(*reservations)
        raise
    logger.info("upload_id=%s presigned", upload_id)
    return record, form


def ready_upload(services: Services, record: UploadRecord, field: str) -> UploadRecord:
    """The upload, checked and in place; a pending one is checked now. A check that fails
    raises its usual error and removes the stored object, so a bad file costs nothing more."""
    if record.status == "ready" or record.staging_key is None:
        return record
    settings = services.settings
    store = _s3(services)
    with tempfile.TemporaryDirectory(prefix="audiochat-upload-") as folder:
        path = Path(folder) / "audio"
        try:
            etag = store.fetch(record.staging_key, path, settings.max_upload_bytes)
            with path.open("rb") as stream:
                seconds = check_audio(settings, stream, settings.max_audio_seconds, field)
        except ObjectNotFound as exc:
            raise UploadIncomplete(
                f"nothing has been uploaded for upload {record.id} yet", field=field
            ) from exc
        except ServiceError as exc:
            if exc.status < 500:
                delete_quietly(store, record.staging_key, "a refused upload")
            raise
        size = path.stat().st_size
        store.copy(
            record.staging_key, record.key, etag, {"original-filename": record.filename or ""}
        )
    ready = record.model_copy(
        update={"status": "ready", "staging_key": None, "bytes": size, "seconds": seconds}
    )
    services.uploads.replace(ready)
    delete_quietly(store, record.staging_key, "checking an upload")
    logger.info("upload_id=%s checked (%.1f s, %d bytes)", record.id, seconds, size)
    return ready
