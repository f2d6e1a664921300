"""The two stages of a job, transcribe and answer, as plain functions of a job id (no Celery).

Each stage reads the job record, does its work with the worker's model, streams what it makes
as events, and writes its result back. A stage that finds its work already done, or its job
ended, does nothing, so a redelivered task is harmless.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis

from shared.config import Settings
from shared.errors import (
    JobCanceled,
    ModelError,
    NoSpeech,
    ServiceError,
    StageTimeout,
    StorageUnavailable,
    WorkerLost,
)
from shared.events import EventPublisher
from shared.jobs import JobRepository, utcnow
from shared.outcomes import end_job, fail_job
from shared.running import HELD_ELSEWHERE, RunningJobs
from shared.schemas import (
    EventName,
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
    Turn,
)
from worker.gpu import free_cached_memory
from worker.pieces import DeltaCoalescer, collect_segments, note_languages, split_stats
from worker.windows import Window, split_windows

logger = logging.getLogger(__name__)

# How often a streaming stage looks at the job's status to notice a cancel.
_CANCEL_CHECK_SECONDS = 0.2


@dataclass(frozen=True)
class RunningStage:
    """The stage this worker is running now (read by the watchdog thread)."""

    job_id: str
    stage: str
    started: float  # time.monotonic()
    hard_limit: float


class JobPipeline:
    """Runs job stages on one loaded model."""

    def __init__(
        self,
        backend: ModelBackend,
        jobs: JobRepository,
        events: EventPublisher,
        store: AudioStore,
        settings: Settings,
        running: RunningJobs,
        worker_name: str,
    ) -> None:
        self.backend = backend
        self._jobs = jobs
        self._events = events
        self._store = store
        self._settings = settings
        self._running = running
        self.worker_name = worker_name
        self.current: RunningStage | None = None

    def transcribe(self, job_id: str) -> None:
        """Stage 1: speech to text, streamed as `transcript.delta` events."""
        self._guarded(job_id, "transcribe", self._transcribe)

    def answer(self, job_id: str) -> None:
        """Stage 2: answer the question (or the spoken question), streamed token by token."""
        self._guarded(job_id, "answer", self._answer)

    def _guarded(self, job_id: str, stage: str, run: Callable[[str], None]) -> None:
        """Run a stage; whatever escapes it fails the job, so no job is left mid-stage."""
        limits = {
            "transcribe": self._settings.transcribe_time_limit,
            "answer": self._settings.answer_time_limit,
        }
        self.current = RunningStage(job_id, stage, time.monotonic(), limits[stage])
        release = True
        try:
            run(job_id)
        except JobCanceled:
            logger.info("canceled; %s stopped", stage, extra={"job_id": job_id})
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Redis stayed away past the client's retries. That is no fault of the job, and
            # failing it now would be wrong the moment Redis returns. The claim stays: the
            # broker redelivers the unacknowledged task, or, since this worker's heartbeat no
            # longer names the job, the reaper requeues it; either runs the stage again.
            logger.error(
                "Redis unreachable (%s); %s left to be run again once it is back",
                exc,
                stage,
                extra={"job_id": job_id},
            )
            release = False
        except Exception as exc:
            self._fail(job_id, exc)
        finally:
            self.current = None
            if release:
                self._running.release(job_id)
            free_cached_memory()

    def fail_current(self, error: ServiceError) -> None:
        """Fail the job of the running stage from another thread (the watchdog)."""
        current = self.current
        if current is not None:
            fail_job(self._jobs, self._events, current.job_id, error)
            self._running.release(current.job_id)

    def _transcribe(self, job_id: str) -> None:
        job = self._open(
            job_id, "transcribe", JobStatus.TRANSCRIBING, done=lambda j: j.transcript is not None
        )
        if job is None:
            return
        started = time.perf_counter()
        texts: list[str] = []
        segments: list[TranscriptSegment] = []
        languages: list[str] = []
        windows = 0
        offset = 0.0  # where the current part starts in the job's audio
        for part in job.audio:
            audio = self._load_audio(part.key)
            window_texts: list[str] = []
            # Long audio goes to a model with a short input window by window, each streamed as
            # the model transcribes it.
            for window in self._windows(audio):
                pieces = note_languages(
                    self.backend.transcribe(
                        audio[window.start : window.end],
                        language=job.language,
                        prompt=job.transcription_prompt,
                    ),
                    languages,
                )
                bounds = (offset + window.start / SAMPLE_RATE, offset + window.end / SAMPLE_RATE)
                timed = collect_segments(pieces, segments, *bounds)
                window_texts.append(self._stream(job_id, EventName.TRANSCRIPT_DELTA, timed).strip())
                windows += 1
            texts.append(" ".join(text for text in window_texts if text))
            offset += len(audio) / SAMPLE_RATE
        transcript = "\n".join(text for text in texts if text)
        if not transcript and not job.question and job.task is JobTask.ANSWER:
            raise NoSpeech()
        durations = StageDurations(transcribe_seconds=round(time.perf_counter() - started, 4))
        # The language most of the speech was heard in, from a model that reports one.
        heard = Counter(languages).most_common(1)[0][0] if languages else None
        self._jobs.update(
            job_id,
            transcript=transcript,
            segments=segments,
            durations=durations,
            transcript_windows=windows,
            detected_language=heard,
        )
        completed = {"text": transcript, **({"language": heard} if heard else {})}
        self._events.publish(job_id, EventName.TRANSCRIPT_COMPLETED, completed)
        logger.info("transcribed in %.2f s", durations.transcribe_seconds, extra={"job_id": job_id})
        if job.task is JobTask.TRANSCRIBE:
            end_job(self._jobs, self._events, job_id, JobStatus.SUCCEEDED)

    def _answer(self, job_id: str) -> None:
        job = self._open(job_id, "answer", JobStatus.ANSWERING, done=lambda j: j.answer is not None)
        if job is None:
            return
        started = time.perf_counter()
        stats: list[GenerationStats] = []
        pieces = split_stats(self.backend.answer(self._answer_request(job)), stats)
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
        end_job(
            self._jobs,
            self._events,
            job_id,
            JobStatus.SUCCEEDED,
            answer=answer,
            finish_reason=finish_reason,
            durations=durations,
        )
        logger.info("answered in %.2f s", durations.answer_seconds, extra={"job_id": job_id})

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
        self, job_id: str, stage: str, status: JobStatus, done: Callable[[JobRead], bool]
    ) -> JobRead | None:
        """The job if this stage should run now, after claiming it and marking it `status`;
        None if it ended, the stage is done, or a live worker is running it already."""
        job = self._jobs.get(job_id)
        if job is None:
            logger.warning("not found (expired?); stage skipped", extra={"job_id": job_id})
            return None
        if job.status.is_terminal or done(job):
            logger.info("already %s; %s skipped", job.status.value, stage, extra={"job_id": job_id})
            return None
        attempt = self._running.claim(job_id, self.worker_name, stage)
        if attempt == HELD_ELSEWHERE or attempt == 0:
            logger.info("%s runs elsewhere; this delivery skipped", stage, extra={"job_id": job_id})
            return None
        if attempt > self._settings.max_stage_attempts:
            raise WorkerLost(
                f"the {stage} stage was started {attempt - 1} times and its worker died each time"
            )
        fields = {} if job.started_at else {"started_at": utcnow()}
        if not self._jobs.transition(job_id, status, **fields):
            return None
        # A stage run again after its worker died says so: its deltas start over.
        data = {"status": status.value, **({"attempt": attempt} if attempt > 1 else {})}
        self._events.publish(job_id, EventName.STATUS, data)
        return job

    def _windows(self, audio: Audio) -> list[Window]:
        """The windows a model transcribes `audio` in: all of it at once, unless the model hears
        at most `max_audio_seconds` (or the settings ask for shorter windows)."""
        limit: float | None = getattr(self.backend, "max_audio_seconds", None)
        if limit is None:
            return [Window(0, len(audio))]
        if self._settings.max_window_seconds is not None:
            limit = min(limit, self._settings.max_window_seconds)
        return split_windows(audio, SAMPLE_RATE, limit)

    def _load_audio(self, key: str) -> Audio:
        """Fetch one stored audio object and decode it to model input; a store that does not
        answer is tried again with growing pauses before the job fails."""
        delay = self._settings.storage_backoff_seconds
        for attempt in range(1, self._settings.storage_attempts + 1):
            try:
                with tempfile.TemporaryDirectory(prefix="audiochat-") as tmp:
                    path = Path(tmp) / "input"
                    self._store.download(key, path)
                    return decode_audio(path)
            except StorageUnavailable as exc:
                if attempt == self._settings.storage_attempts:
                    raise
                logger.warning("fetching %s failed (%s); retrying in %.1f s", key, exc, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _stream(self, job_id: str, event: EventName, pieces: Iterable[str]) -> str:
        """Publish pieces as coalesced deltas; stop between pieces if the job was canceled or
        the stage ran past its soft time limit (closing `pieces` stops the model)."""
        coalescer = DeltaCoalescer(
            self._events, job_id, event, self._settings.max_events_per_second
        )
        soft_limits = {
            "transcribe": self._settings.transcribe_soft_time_limit,
            "answer": self._settings.answer_soft_time_limit,
        }
        current = self.current
        deadline = current.started + soft_limits[current.stage] if current else float("inf")
        next_check = 0.0
        text: list[str] = []
        for piece in pieces:
            text.append(piece)
            coalescer.add(piece)
            now = time.monotonic()
            if now >= deadline:
                raise StageTimeout(f"the stage ran past its {soft_limits[current.stage]:g} s limit")  # type: ignore[union-attr]
            if now >= next_check:
                next_check = now + _CANCEL_CHECK_SECONDS
                if self._jobs.status(job_id) is JobStatus.CANCELED:
                    raise JobCanceled()
        coalescer.flush()
        return "".join(text)

    def _fail(self, job_id: str, exc: Exception) -> None:
        error = exc if isinstance(exc, ServiceError) else ModelError(f"{type(exc).__name__}: {exc}")
        logger.error(
            "failed: %s %s", error.code, error.message, exc_info=exc, extra={"job_id": job_id}
        )
        fail_job(self._jobs, self._events, job_id, error)
