"""The one interface every model backend honours, and what passes through it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from worker.audio import Audio


@dataclass(frozen=True)
class Turn:
    """An earlier question (with its audio, if it had any) and its answer."""

    question: str
    answer: str
    audio: Audio | None = None


@dataclass(frozen=True)
class AnswerRequest:
    question: str
    # The job's audio parts, in order; empty for a typed question or a backend that cannot hear.
    audios: list[Audio] = field(default_factory=list)
    transcript: str | None = None
    history: list[Turn] = field(default_factory=list)
    max_new_tokens: int = 256
    temperature: float = 0.0


@dataclass(frozen=True)
class TimedWord:
    """One word and its times, in seconds from the start of the audio given to `transcribe`."""

    word: str
    start: float
    end: float


@dataclass(frozen=True)
class TranscriptPiece:
    """A piece of a transcript; times in seconds from the start of the audio, when known."""

    text: str
    start: float | None = None
    end: float | None = None
    # Its words with their times, when they were asked for and the model gives them.
    words: tuple[TimedWord, ...] = ()
    # The language the model transcribed in (ISO 639-1), when the model says.
    language: str | None = None


@dataclass(frozen=True)
class GenerationStats:
    """Yielded once, last, by `answer`: what the generation cost and why it stopped."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"


@runtime_checkable
class ModelBackend(Protocol):
    """A loaded model that can transcribe speech and answer questions, streaming both."""

    name: str
    # True if `answer` listens to `AnswerRequest.audios`; otherwise the stage does not fetch them.
    hears_audio: bool

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None, words: bool = False
    ) -> Iterator[TranscriptPiece]:
        """Pieces of the transcript, as the model produces them (`prompt` guides spelling).
        `words=True` asks for each piece's words; it is passed only to a backend whose class
        sets `word_timestamps = True`, so a backend without word times need not take it."""
        ...

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        """Text pieces of the answer as they are generated, then one GenerationStats."""
        ...
