"""The two stages of a job, transcribe and answer, as plain functions of a job id (no Celery).

Each stage reads the job record, does its work with the worker's model, streams what it makes
as events, and writes its result back. A stage that finds its work already done, or its job
ended, does nothing, so a redelivered task is harmless.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from shared.config import Settings
from shared.errors import ModelError, NoSpeech, ServiceError
from shared.events import EventPublisher
from shared.jobs import JobRepository, utcnow
from shared.schemas import (
    EventName,
    JobError,
    JobRead,
    JobStatus,
    JobTask,
    StageDurations,
    TranscriptSegment,
)
from shared.storage import AudioStore, upload_key
from worker.audio import SAMPLE_RATE, Audio, decode_audio
from worker.backends.base import (
    AnswerRequest,
    GenerationStats,
    ModelBackend,
    TranscriptPiece,
    Turn,
)

logger = logging.getLogger(__name__)


class DeltaCoalescer:
    """Joins text pieces so a job publishes at most `rate` delta events per second."""

    def __init__(self, publish: EventPublisher, job_id: str, event: EventName, rate: float):
        self._publish = publish
        self._job_id = job_id
        self._event = event
        self._interval = 1.0 / rate
        self._pending: list[str] = []
        self._last_flush = 0.0

    def add(self, piece: str) -> None:
        self._pending.append(piece)
        if time.monotonic() - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._publish.publish(self._job_id, self._event, {"text": "".join(self._pending)})
            self._pending.clear()
            self._last_flush = time.monotonic()


class JobPipeline:
    """Runs job stages on one loaded model."""

    def __init__(
        self,
        backend: ModelBackend,
        jobs: JobRepository,
        events: EventPublisher,
        store: AudioStore,
        settings: Settings,
    ) -> None:
        self.backend = backend
        self._jobs = jobs
        self._events = events
        self._store = store
        self._settings = settings

    def transcribe(self, job_id: str) -> None:
        """Stage 1: speech to text, streamed as `transcript.delta` events."""
        self._guarded(job_id, self._transcribe)

    def answer(self, job_id: str) -> None:
        """Stage 2: answer the question (or the spoken question), streamed token by token."""
        self._guarded(job_id, self._answer)

    def _guarded(self, job_id: str, stage: Callable[[str], None]) -> None:
        """Run a stage; whatever escapes it fails the job, so no job is left mid-stage."""
        try:
            stage(job_id)
        except Exception as exc:
            self._fail(job_id, exc)

    def _transcribe(self, job_id: str) -> None:
        job = self._open(job_id, JobStatus.TRANSCRIBING, done=lambda j: j.transcript is not None)
        if job is None:
            return
        started = time.perf_counter()
        texts: list[str] = []
        segments: list[TranscriptSegment] = []
        offset = 0.0  # where the current part starts in the job's audio
        for part in job.audio:
            audio = self._load_audio(part.key)
            pieces = self.backend.transcribe(
                audio, language=job.language, prompt=job.transcription_prompt
            )
            timed = _collect_segments(pieces, segments, offset)
            texts.append(self._stream(job_id, EventName.TRANSCRIPT_DELTA, timed).strip())
            offset += len(audio) / SAMPLE_RATE
        transcript = "\n".join(text for text in texts if text)
        if not transcript and not job.question and job.task is JobTask.ANSWER:
            raise NoSpeech()
        durations = StageDurations(transcribe_seconds=round(time.perf_counter() - started, 4))
        self._jobs.update(job_id, transcript=transcript, segments=segments, durations=durations)
        self._events.publish(job_id, EventName.TRANSCRIPT_COMPLETED, {"text": transcript})
        logger.info("job_id=%s transcribed in %.2f s", job_id, durations.transcribe_seconds)
        if job.task is JobTask.TRANSCRIBE and self._jobs.transition(
            job_id, JobStatus.SUCCEEDED, finished_at=utcnow()
        ):
            self._publish_end(job_id, JobStatus.SUCCEEDED)

    def _answer(self, job_id: str) -> None:
        job = self._open(job_id, JobStatus.ANSWERING, done=lambda j: j.answer is not None)
        if job is None:
            return
        started = time.perf_counter()
        stats: list[GenerationStats] = []
        pieces = _split_stats(self.backend.answer(self._answer_request(job)), stats)
        answer = self._stream(job_id, EventName.ANSWER_DELTA, pieces).strip()
        final = stats[-1] if stats else None
        finish_reason = final.finish_reason if final else "stop"
        usage = (
            {"prompt_tokens": final.prompt_tokens, "completion_tokens": final.completion_tokens}
            if final
            else {}
        )
        self._events.publish(
            job_id,
            EventName.ANSWER_COMPLETED,
            {"text": answer, "finish_reason": finish_reason, **usage},
        )
        durations = job.durations.model_copy(
            update={"answer_seconds": round(time.perf_counter() - started, 4)}
        )
        if self._jobs.transition(
            job_id,
            JobStatus.SUCCEEDED,
            answer=answer,
            finish_reason=finish_reason,
            durations=durations,
            finished_at=utcnow(),
        ):
            self._publish_end(job_id, JobStatus.SUCCEEDED)
        logger.info("job_id=%s answered in %.2f s", job_id, durations.answer_seconds)

    def _answer_request(self, job: JobRead) -> AnswerRequest:
        """What the model needs to answer: audio only if it can hear, history with its audio."""
        question = job.question or job.transcript
        if not question:
            raise NoSpeech()
        hears = self.backend.hears_audio
        history = [
            Turn(
                question=turn.question,
                answer=turn.answer,
                audio=self._load_audio(upload_key(turn.upload_id))
                if hears and turn.upload_id
                else None,
            )
            for turn in job.history
        ]
        return AnswerRequest(
            question=question,
            audios=[self._load_audio(part.key) for part in job.audio] if hears else [],
            transcript=job.transcript,
            history=history,
            max_new_tokens=job.max_new_tokens,
            temperature=job.temperature,
        )

    def _open(
        self, job_id: str, status: JobStatus, done: Callable[[JobRead], bool]
    ) -> JobRead | None:
        """The job if this stage should run now, after marking it `status`; else None."""
        job = self._jobs.get(job_id)
        if job is None:
            logger.warning("job_id=%s not found (expired?); stage skipped", job_id)
            return None
        if job.status.is_terminal or done(job):
            logger.info("job_id=%s already %s; stage skipped", job_id, job.status.value)
            return None
        fields = {} if job.started_at else {"started_at": utcnow()}
        if not self._jobs.transition(job_id, status, **fields):
            return None
        self._events.publish(job_id, EventName.STATUS, {"status": status.value})
        return job

    def _load_audio(self, key: str) -> Audio:
        """Fetch one stored audio object and decode it to model input."""
        with tempfile.TemporaryDirectory(prefix="audiochat-") as tmp:
            path = Path(tmp) / "input"
            self._store.download(key, path)
            return decode_audio(path)

    def _stream(self, job_id: str, event: EventName, pieces: Iterable[str]) -> str:
        coalescer = DeltaCoalescer(
            self._events, job_id, event, self._settings.max_events_per_second
        )
        text: list[str] = []
        for piece in pieces:
            text.append(piece)
            coalescer.add(piece)
        coalescer.flush()
        return "".join(text)

    def _fail(self, job_id: str, exc: Exception) -> None:
        error = exc if isinstance(exc, ServiceError) else ModelError(f"{type(exc).__name__}: {exc}")
        logger.error("job_id=%s failed: %s %s", job_id, error.code, error.message, exc_info=exc)
        record = JobError(code=error.code, message=error.message)
        if self._jobs.transition(job_id, JobStatus.FAILED, error=record, finished_at=utcnow()):
            self._events.publish(job_id, EventName.ERROR, record.model_dump())
            self._publish_end(job_id, JobStatus.FAILED)

    def _publish_end(self, job_id: str, status: JobStatus) -> None:
        self._events.publish(job_id, EventName.STATUS, {"status": status.value})
        self._events.publish(job_id, EventName.DONE, {"status": status.value})


def _collect_segments(
    pieces: Iterable[TranscriptPiece], segments: list[TranscriptSegment], offset: float
) -> Iterator[str]:
    """The text of transcript pieces; each piece goes into `segments`, its times shifted by
    `offset` so they count from the start of the job's first audio part."""
    for piece in pieces:
        segments.append(
            TranscriptSegment(
                text=piece.text.strip(),
                start=None if piece.start is None else round(piece.start + offset, 3),
                end=None if piece.end is None else round(piece.end + offset, 3),
            )
        )
        yield piece.text


def _split_stats(
    items: Iterable[str | GenerationStats], stats: list[GenerationStats]
) -> Iterator[str]:
    """The text pieces of an answer stream; its GenerationStats go into `stats`."""
    for item in items:
        if isinstance(item, GenerationStats):
            stats.append(item)
        else:
            yield item
