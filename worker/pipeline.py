"""The two stages of a job, transcribe and answer, as plain functions of a job id (no Celery).

Each stage reads the job record, does its work with the worker's model, streams what it makes
as events, and writes its result back. A stage that finds its work already done, or its job
ended, does nothing, so a redelivered task is harmless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from typing import Any

import redis

from shared.config import Settings
from shared.errors import (
    JobCanceled,
    ModelError,
    NoSpeech,
    ServiceError,
    StageTimeout,
    WorkerLost,
)
from shared.events import EventPublisher
from shared.job_endings import end_job, fail_job
from shared.jobs import JobRepository, utcnow
from shared.running import HELD_ELSEWHERE, RunningJobs
from shared.schemas import (
    EventName,
    JobRead,
    JobStatus,
    JobTask,
    StageDurations,
)
from shared.storage import AudioStore
from worker.audio import SAMPLE_RATE
from worker.backends.base import GenerationStats, ModelBackend
from worker.gpu import free_cached_memory
from worker.pieces import DeltaCoalescer, TimedTranscript, collect_segments, split_stats
from worker.stage_inputs import StageInputs

logger = logging.getLogger(__name__)

# How often a streaming stage looks at the job's status to notice a cancel.
_CANCEL_CHECK_SECONDS = 0.2


@dataclass(frozen=True, eq=False)
class RunningStage:
    """A stage this worker is running now (read by the watchdog and the heartbeat threads)."""

    job_id: str
    stage: str
    started: float  # time.monotonic()
    hard_limit: float
    soft_limit: float


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
        self._inputs = StageInputs(backend, store, settings)
        self._settings = settings
        self._running = running
        self.worker_name = worker_name
        # The stages running now, one per job, each in its own task thread.
        self.running: dict[str, RunningStage] = {}
        self._running_lock = threading.Lock()

    def running_jobs(self) -> list[str]:
        """The ids of the jobs whose stages run here now."""
        with self._running_lock:
            return list(self.running)

    def transcribe(self, job_id: str) -> None:
        """Stage 1: speech to text, streamed as `transcript.delta` events."""
        self._guarded(job_id, "transcribe", self._transcribe)

    def answer(self, job_id: str) -> None:
        """Stage 2: answer the question (or the spoken question), streamed token by token."""
        self._guarded(job_id, "answer", self._answer)

    def _guarded(self, job_id: str, stage: str, run: Callable[[str], None]) -> None:
        """Run a stage; whatever escapes it fails the job, so no job is left mid-stage."""
        running = self._start(job_id, stage)
        if running is None:
            logger.info(
                "%s runs here already; this delivery skipped", stage, extra={"job_id": job_id}
            )
            return
        release = True
        try:
            run(job_id)
        except JobCanceled:
            logger.info("canceled; %s stopped", stage, extra={"job_id": job_id})
        except (redis.ConnectionError, redis.TimeoutError, redis.OutOfMemoryError) as exc:
            # Redis stayed away past the client's retries, or is full (maxmemory, noeviction).
            # That is no fault of the job, and failing it now would be wrong the moment Redis
            # returns (while it is full, failing it could not even be written). The claim
            # stays: the broker redelivers the unacknowledged task, or, since this worker's
            # heartbeat no longer names the job, the reaper requeues it; either runs the stage
            # again.
            logger.error(
                "Redis unreachable or full (%s); %s left to be run again once it is back",
                exc,
                stage,
                extra={"job_id": job_id},
            )
            release = False
        except Exception as exc:
            self._fail(job_id, exc)
        finally:
            if release:
                self._running.release(job_id, self.worker_name, stage)
            with self._running_lock:
                del self.running[job_id]
                idle = not self.running
            if idle:
                free_cached_memory()

    def _start(self, job_id: str, stage: str) -> RunningStage | None:
        """Record the stage as running here; None if a stage of the job already runs here (a
        task delivered twice: the claim cannot tell two threads of one worker apart)."""
        settings = self._settings
        limits = {
            "transcribe": (settings.transcribe_time_limit, settings.transcribe_soft_time_limit),
            "answer": (settings.answer_time_limit, settings.answer_soft_time_limit),
        }
        hard, soft = limits[stage]
        with self._running_lock:
            if job_id in self.running:
                return None
            running = RunningStage(job_id, stage, time.monotonic(), hard, soft)
            self.running[job_id] = running
            return running

    def fail_overdue(self, stage: RunningStage, error: ServiceError) -> bool:
        """Fail the job of `stage`, from another thread (the watchdog), if that very stage is
        still running; False if it ended meanwhile (another stage may have started since)."""
        with self._running_lock:
            if self.running.get(stage.job_id) is not stage:
                return False
        fail_job(self._jobs, self._events, stage.job_id, error)
        self._running.release(stage.job_id, self.worker_name, stage.stage)
        return True

    def _transcribe(self, job_id: str) -> None:
        job = self._open(
            job_id, "transcribe", JobStatus.TRANSCRIBING, done=lambda j: j.transcript is not None
        )
        if job is None:
            return
        started = time.perf_counter()
        texts: list[str] = []
        timed = TimedTranscript()
        # Only a backend that declares word times is asked for them (the others lack the option).
        words = job.word_timestamps and getattr(self.backend, "word_timestamps", False)
        windows = 0
        offset = 0.0  # where the current part starts in the job's audio
        for part in job.audio:
            audio = self._inputs.audio(part.key)
            window_texts: list[str] = []
            # Long audio goes to a model with a short input window by window, each streamed as
            # the model transcribes it.
            for window in self._inputs.windows(audio):
                pieces = self.backend.transcribe(
                    audio[window.start : window.end],
                    language=job.language,
                    prompt=job.transcription_prompt,
                    **({"words": True} if words else {}),
                )
                bounds = (offset + window.start / SAMPLE_RATE, offset + window.end / SAMPLE_RATE)
                with closing_iterator(pieces):
                    text = self._stream(
                        job_id,
                        EventName.TRANSCRIPT_DELTA,
                        collect_segments(pieces, timed, *bounds),
                    )
                window_texts.append(text.strip())
                windows += 1
            texts.append(" ".join(text for text in window_texts if text))
            offset += len(audio) / SAMPLE_RATE
        transcript = "\n".join(text for text in texts if text)
        if not transcript and not job.question and job.task is JobTask.ANSWER:
            raise NoSpeech()
        durations = StageDurations(transcribe_seconds=round(time.perf_counter() - started, 4))
        self._jobs.update(
            job_id,
            transcript=transcript,
            segments=timed.segments,
            durations=durations,
            transcript_windows=windows,
            transcript_language=timed.language,
            words=timed.words if job.word_timestamps else None,
        )
        completed: dict[str, Any] = {"text": transcript}
        if timed.language:
            completed["language"] = timed.language
        if job.word_timestamps:
            completed["words"] = [word.model_dump() for word in timed.words]
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
        generated = self.backend.answer(self._inputs.answer_request(job))
        with closing_iterator(generated):
            answer = self._stream(job_id, EventName.ANSWER_DELTA, split_stats(generated, stats))
        answer = answer.strip()
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

    def _stream(self, job_id: str, event: EventName, pieces: Iterable[str]) -> str:
        """Publish pieces as coalesced deltas; stop between pieces if the job was canceled or
        the stage ran past its soft time limit. An empty piece is a model still at work on
        other jobs: nothing to publish, but a moment to look at the job and the clock."""
        coalescer = DeltaCoalescer(
            self._events, job_id, event, self._settings.max_events_per_second
        )
        stage = self.running[job_id]
        deadline = stage.started + stage.soft_limit
        next_check = 0.0
        text: list[str] = []
        for piece in pieces:
            if piece:
                text.append(piece)
                coalescer.add(piece)
            now = time.monotonic()
            if now >= deadline:
                raise StageTimeout(f"the stage ran past its {stage.soft_limit:g} s limit")
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


def closing_iterator(items: Iterator[Any]) -> AbstractContextManager[Any]:
    """A context that closes `items` on leaving, so a model's generation stops the moment its
    stage does (a cancel, a time limit, an error), not when the garbage collector gets to it."""
    return closing(items) if hasattr(items, "close") else nullcontext()
