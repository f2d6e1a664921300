"""What a stage reads before its model runs: audio from the store, decoded; the windows a
transcription goes in; the request an answer is made from."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from shared.config import Settings
from shared.errors import NoSpeech, StorageUnavailable
from shared.schemas import JobRead
from shared.storage import AudioStore, upload_key
from worker.audio import SAMPLE_RATE, Audio, decode_audio
from worker.backends.base import AnswerRequest, ModelBackend, Turn
from worker.windows import Window, split_windows

logger = logging.getLogger(__name__)


class StageInputs:
    def __init__(self, backend: ModelBackend, store: AudioStore, settings: Settings) -> None:
        self._backend = backend
        self._store = store
        self._settings = settings

    def audio(self, key: str) -> Audio:
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

    def windows(self, audio: Audio) -> list[Window]:
        """The windows a model transcribes `audio` in: all of it at once, unless the model hears
        at most `max_audio_seconds` (or the settings ask for shorter windows)."""
        limit: float | None = getattr(self._backend, "max_audio_seconds", None)
        if limit is None:
            return [Window(0, len(audio))]
        if self._settings.max_window_seconds is not None:
            limit = min(limit, self._settings.max_window_seconds)
        return split_windows(audio, SAMPLE_RATE, limit)

    def answer_request(self, job: JobRead) -> AnswerRequest:
        """What the model needs to answer: audio only if it can hear, history with its audio."""
        question = job.question or job.transcript
        if not question:
            raise NoSpeech()
        hears = self._backend.hears_audio
        history = [
            Turn(
                question=turn.question,
                answer=turn.answer,
                audio=self.audio(upload_key(turn.upload_id)) if hears and turn.upload_id else None,
            )
            for turn in job.history
        ]
        return AnswerRequest(
            question=question,
            audios=[self.audio(part.key) for part in job.audio] if hears else [],
            transcript=job.transcript,
            history=history,
            max_new_tokens=job.max_new_tokens,
            temperature=job.temperature,
        )
