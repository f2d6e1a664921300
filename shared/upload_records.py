"""Records of recordings uploaded on their own (`POST /v1/uploads`, `POST /upload`).

The audio itself is in the store under `uploads/{id}/audio`; the record says whose it is and
what it is, and expires after the same retention as a job. Jobs refer to an upload by id and
use its stored audio in place, without copying it.

A presigned upload (S3 store only) starts `pending`: the client sends the file to the store
itself, under `uploads/{id}/incoming`. The first job that names it has it checked like any
upload and moved to `uploads/{id}/audio`; from then on it is `ready`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import redis
from pydantic import BaseModel

from shared.errors import Conflict, ServiceError
from shared.redis_keys import upload_record_key


class UploadNotFound(ServiceError):
    status = 404
    code = "upload-not-found"
    title = "No such upload"


class UploadIncomplete(Conflict):
    code = "upload-incomplete"
    title = "Nothing has been uploaded to this upload's presigned URL yet"


class UploadRecord(BaseModel):
    """One stored recording and its owner."""

    id: str
    tenant: str
    key: str
    # `pending`: presigned, and not yet checked (nor, perhaps, uploaded).
    status: Literal["ready", "pending"] = "ready"
    # Where the client uploads a presigned upload, until it is checked.
    staging_key: str | None = None
    # Percent-escaped, as in a job's audio parts (`shared.storage.escape_filename`).
    filename: str | None = None
    # Known once the audio is checked.
    bytes: int | None = None
    seconds: float | None = None
    # The original Audio-Chat client names itself with `clientid`; kept for tracing only.
    client_id: str | None = None
    created_at: datetime
    expires_at: datetime
    # Set once a job has transcribed this recording alone, so a later chat turn that refers
    # to it has its words even with a model that cannot hear audio.
    transcript: str | None = None


def new_upload_id() -> str:
    """A fresh upload id: random, URL-safe, never derived from client input."""
    return uuid.uuid4().hex


class UploadRepository:
    """Creates and reads upload records; a tenant never sees another tenant's uploads."""

    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self._redis = client
        self.retention_seconds = retention_seconds

    def create(self, record: UploadRecord) -> None:
        self._redis.set(
            upload_record_key(record.id), record.model_dump_json(), ex=self.retention_seconds
        )

    def get(self, upload_id: str, tenant: str) -> UploadRecord | None:
        """The record, or None if there is none, it expired, or it is another tenant's."""
        raw = self._redis.get(upload_record_key(upload_id))
        if raw is None:
            return None
        record = UploadRecord.model_validate_json(raw)
        return record if record.tenant == tenant else None

    def require(self, upload_id: str, tenant: str, field: str) -> UploadRecord:
        """The record, or UploadNotFound naming the request `field` that referred to it."""
        record = self.get(upload_id, tenant)
        if record is None:
            raise UploadNotFound(f"no upload {upload_id} (it may have expired)", field=field)
        return record

    def replace(self, record: UploadRecord) -> None:
        """Write a changed record; one that expired meanwhile stays gone."""
        self._redis.set(
            upload_record_key(record.id), record.model_dump_json(), xx=True, keepttl=True
        )

    def set_transcript(self, upload_id: str, tenant: str, transcript: str) -> None:
        """Remember what the recording says; a record that expired meanwhile stays gone."""
        record = self.get(upload_id, tenant)
        if record is None:
            return
        updated = record.model_copy(update={"transcript": transcript})
        # XX: only if it still exists; KEEPTTL: it expires when it would have.
        self._redis.set(
            upload_record_key(upload_id), updated.model_dump_json(), xx=True, keepttl=True
        )

    def delete(self, upload_id: str) -> None:
        self._redis.delete(upload_record_key(upload_id))
