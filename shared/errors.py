"""Errors with an HTTP status and a stable code, shared by the gateway and the workers.

    ServiceError                     500 internal-error
    ├── InvalidRequest               422 invalid-request
    │   ├── MissingInput             422 missing-input
    │   ├── UnknownModel             422 unknown-model
    │   ├── InvalidAudio             422 invalid-audio
    │   │   └── TruncatedAudio       422 truncated-audio
    │   ├── AudioTooLong             422 audio-too-long
    │   └── NoSpeech                 422 no-speech
    ├── Unauthorized (api/auth.py)   401 unauthorized
    ├── TooManyRequests              429 rate-limited
    │   ├── TooManyActiveJobs        429 too-many-active-jobs
    │   └── StorageQuotaExceeded     429 storage-quota-exceeded
    ├── Conflict                     409 conflict
    │   ├── IdempotencyKeyReused     409 idempotency-key-reused
    │   └── JobFinished              409 job-finished
    ├── UnsupportedMediaType         415 unsupported-media-type
    ├── UploadTooLarge               413 upload-too-large
    ├── RequestTimeout               408 request-timeout
    ├── JobNotFound                  404 job-not-found
    ├── ServiceUnavailable           503 service-unavailable
    │   ├── StorageUnavailable       503 storage-unavailable
    │   ├── QueueFull                503 queue-full
    │   ├── RedisFull                503 redis-full
    │   └── ModelUnavailable         503 model-unavailable
    ├── ModelError                   500 model-error
    ├── StageTimeout                 504 timeout
    ├── JobNotFinished               504 job-not-finished
    ├── WorkerLost                   500 worker-lost
    └── JobCanceled                  409 canceled

A failed job carries the same `{code, message}` in its record and in its SSE `error` event.
"""

from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """Base of every error audiochat reports to a client."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.message = message or self.title
        # The request field at fault, named in the problem's `errors` list.
        self.field = field
        # Seconds after which trying again may succeed (the `Retry-After` header).
        self.retry_after = retry_after
        super().__init__(self.message)


class InvalidRequest(ServiceError):
    status = 422
    code = "invalid-request"
    title = "The request is not valid"


class MissingInput(InvalidRequest):
    code = "missing-input"
    title = "A job needs audio, a question, or both"


class UnknownModel(InvalidRequest):
    code = "unknown-model"
    title = "No such model"


class InvalidAudio(InvalidRequest):
    code = "invalid-audio"
    title = "The audio could not be decoded"


class TruncatedAudio(InvalidAudio):
    code = "truncated-audio"
    title = "The audio ends before its header says it does"


class AudioTooLong(InvalidRequest):
    code = "audio-too-long"
    title = "The audio is longer than this service accepts"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported-media-type"
    title = "The upload is not audio"


class UploadTooLarge(ServiceError):
    status = 413
    code = "upload-too-large"
    title = "The upload is larger than this service accepts"


class RequestTimeout(ServiceError):
    status = 408
    code = "request-timeout"
    title = "The request body did not arrive in time"


class JobNotFound(ServiceError):
    status = 404
    code = "job-not-found"
    title = "No such job"


class TooManyRequests(ServiceError):
    status = 429
    code = "rate-limited"
    title = "Too many requests"


class TooManyActiveJobs(TooManyRequests):
    code = "too-many-active-jobs"
    title = "Too many jobs of this API key have not ended yet"


class StorageQuotaExceeded(TooManyRequests):
    code = "storage-quota-exceeded"
    title = "This API key keeps as much stored as its quota allows"


class Conflict(ServiceError):
    status = 409
    code = "conflict"
    title = "The request conflicts with the current state"


class IdempotencyKeyReused(Conflict):
    code = "idempotency-key-reused"
    title = "This Idempotency-Key was used for a different request"


class JobFinished(Conflict):
    code = "job-finished"
    title = "The job has already ended"


class ServiceUnavailable(ServiceError):
    status = 503
    code = "service-unavailable"
    title = "A service audiochat depends on is unavailable"


class StorageUnavailable(ServiceUnavailable):
    code = "storage-unavailable"
    title = "The audio store is unavailable"


class QueueFull(ServiceUnavailable):
    code = "queue-full"
    title = "Too many jobs are waiting for this model"


class RedisFull(ServiceUnavailable):
    code = "redis-full"
    title = "Redis is full: it refuses writes until memory is freed"


class ModelUnavailable(ServiceUnavailable):
    code = "model-unavailable"
    title = "No worker serves this model now"


class ModelError(ServiceError):
    code = "model-error"
    title = "The model failed"


class StageTimeout(ServiceError):
    status = 504
    code = "timeout"
    title = "A stage of the job ran over its time limit"


class JobNotFinished(ServiceError):
    status = 504
    code = "job-not-finished"
    title = "The job did not end while the request waited; it goes on"


class WorkerLost(ServiceError):
    code = "worker-lost"
    title = "The worker running the job died too many times"


class JobCanceled(ServiceError):
    status = 409
    code = "canceled"
    title = "The job was canceled"


class NoSpeech(InvalidRequest):
    code = "no-speech"
    title = "No speech was recognised in the audio"
