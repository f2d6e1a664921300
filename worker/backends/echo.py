"""A backend that costs nothing: a fixed transcript and a fixed answer, at once.

It exists to measure what the gateway, Redis, Celery and SSE add (see bench/), and to test the
pipeline quickly. Select it with `AUDIOCHAT_MODEL=echo`; it is not a model.
"""

from __future__ import annotations

from collections.abc import Iterator

from shared.config import Settings
from worker.audio import SAMPLE_RATE, Audio
from worker.backends.base import AnswerRequest, GenerationStats, TranscriptPiece

ECHO_TRANSCRIPT = "this is the echo backend's transcript"


class EchoBackend:
    name = "echo"
    hears_audio = False

    @classmethod
    def load(cls, settings: Settings) -> EchoBackend:
        return cls()

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None
    ) -> Iterator[TranscriptPiece]:
        yield TranscriptPiece(ECHO_TRANSCRIPT, start=0.0, end=len(audio) / SAMPLE_RATE)

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        words = ["You", " asked:", f" {request.question}"]
        yield from words
        yield GenerationStats(prompt_tokens=0, completion_tokens=len(words), finish_reason="stop")
