"""A backend that reports the language of each transcript piece, as a multilingual Whisper
does, for the pipeline's language plumbing without loading a model. Loaded by a real worker
through AUDIOCHAT_BACKEND_CLASS."""

from __future__ import annotations

from collections.abc import Iterator

from shared.config import Settings
from worker.audio import Audio
from worker.backends.base import AnswerRequest, GenerationStats, TranscriptPiece


class LanguageReportingBackend:
    name = "language-reporting"
    hears_audio = False

    @classmethod
    def load(cls, settings: Settings) -> LanguageReportingBackend:
        return cls()

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None
    ) -> Iterator[TranscriptPiece]:
        # Mostly German with an English word, unless the job names the language.
        heard = [language or "de", language or "de", language or "en"]
        for index, code in enumerate(heard):
            yield TranscriptPiece(f"piece{index} ", start=float(index), end=index + 1.0,
                                  language=code)  # fmt: skip

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        yield "ok"
        yield GenerationStats(prompt_tokens=1, completion_tokens=1, finish_reason="stop")
