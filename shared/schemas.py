"""The wire contract: what clients send, what they read back, and the events they follow."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class JobStatus(StrEnum):
    QUEUED = "queued"
    TRANSCRIBING = "transcribing"
    ANSWERING = "answering"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


class EventName(StrEnum):
    STATUS = "status"
    TRANSCRIPT_DELTA = "transcript.delta"
    TRANSCRIPT_COMPLETED = "transcript.completed"
    ANSWER_DELTA = "answer.delta"
    ANSWER_COMPLETED = "answer.completed"
    ERROR = "error"
    DONE = "done"


# Events a job's webhook may ask for; `done` is the last one, whatever the job's outcome.
WebhookEventName = Literal["transcript.completed", "answer.completed", "done"]


def _final_event_only() -> list[WebhookEventName]:
    return ["done"]


class JobTask(StrEnum):
    ANSWER = "answer"  # transcribe any audio, then answer
    TRANSCRIBE = "transcribe"  # transcribe only (the transcription endpoints)


class HistoryTurn(BaseModel):
    """An earlier question and its answer, for multi-turn jobs."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(max_length=8000)
    answer: str = Field(max_length=32000)
    # Audio that was part of that question: the id of an upload (`POST /v1/uploads`).
    upload_id: str | None = Field(default=None, max_length=64)


class JobCreate(BaseModel):
    """Options of a new job; audio files, when there are any, come as multipart parts."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(default=None, min_length=1, max_length=8000)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")
    max_new_tokens: int | None = Field(default=None, ge=1, le=8192)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    model: str | None = Field(default=None, min_length=1, max_length=64)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=32)
    # Audio uploaded earlier (`POST /v1/uploads`), used as if it were attached to this job.
    upload_ids: list[str] = Field(default_factory=list, max_length=8)
    task: JobTask = JobTask.ANSWER
    # Guides the transcription's spelling and style (OpenAI's `prompt`).
    transcription_prompt: str | None = Field(default=None, max_length=2000)
    # Ask for each word's times too (where the model gives them).
    word_timestamps: bool = False
    # A URL to POST the job's events to, signed with the tenant's webhook secret.
    webhook: str | None = Field(default=None, min_length=1, max_length=2048)
    webhook_events_filter: list[WebhookEventName] = Field(
        default_factory=_final_event_only, min_length=1, max_length=3
    )


class TranscriptWord(BaseModel):
    """One word of the transcript and its times, in seconds from the start of the job's audio."""

    word: str
    start: float
    end: float


class TranscriptSegment(BaseModel):
    """A timed piece of the transcript; times are seconds from the start of the job's audio."""

    start: float | None = None
    end: float | None = None
    text: str


class AudioPart(BaseModel):
    """One audio input of a job, as stored."""

    key: str
    filename: str | None = None
    seconds: float


class JobError(BaseModel):
    code: str
    message: str


class StageDurations(BaseModel):
    transcribe_seconds: float | None = None
    answer_seconds: float | None = None


class JobLinks(BaseModel):
    self: str
    # Opens the job's event stream; with API keys on it carries a short-lived job token, so a
    # browser's EventSource (which cannot send headers) can follow the job.
    events: str


class WebhookAttempt(BaseModel):
    """One try at delivering a webhook event."""

    at: datetime
    seconds: float
    # The receiver's HTTP status, if it answered.
    status_code: int | None = None
    # Why the attempt failed, if it did (a timeout, a refused address, a redirect, ...).
    error: str | None = None


class WebhookDelivery(BaseModel):
    """One event sent to the job's webhook; `id` is its `webhook-id`, the same on every try."""

    model_config = ConfigDict(extra="ignore")

    id: str
    event: str
    # `pending` (an attempt is due), `delivered`, or `failed` (given up).
    status: str
    created_at: datetime
    attempts: list[WebhookAttempt] = Field(default_factory=list)
    next_attempt_at: datetime | None = None
    finished_at: datetime | None = None


class JobWebhook(BaseModel):
    """Where a job's events go, which ones, and how each delivery went."""

    url: str
    # Checked against WebhookEventName when the job is made; read back as plain names, so a
    # record written by a newer release still reads.
    events: list[str]
    deliveries: list[WebhookDelivery] = Field(default_factory=list)


class JobRead(BaseModel):
    """A job as `GET /v1/jobs/{id}` returns it."""

    id: str
    status: JobStatus
    model: str
    task: JobTask = JobTask.ANSWER
    question: str | None = None
    language: str | None = None
    max_new_tokens: int
    temperature: float
    has_audio: bool
    audio: list[AudioPart] = Field(default_factory=list)
    history: list[HistoryTurn] = Field(default_factory=list)
    # Long audio is transcribed in windows of at most the model's input length.
    transcript_windows: int | None = None
    transcription_prompt: str | None = None
    word_timestamps: bool = False
    transcript: str | None = None
    # The language the model says the speech is in, where it says (`language` is the asked one).
    transcript_language: str | None = None
    segments: list[TranscriptSegment] | None = None
    # Each word's times, when the job asked for them and the model gives them.
    words: list[TranscriptWord] | None = None
    answer: str | None = None
    finish_reason: str | None = None
    error: JobError | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    durations: StageDurations = Field(default_factory=StageDurations)
    transcribe_attempts: int = 0
    answer_attempts: int = 0
    webhook: JobWebhook | None = None
    links: JobLinks | None = None


class JobEvent(BaseModel):
    """One event of a job's log, as the SSE stream sends it (`id:`, `event:`, `data:`)."""

    id: int
    event: EventName
    data: dict[str, Any]


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
