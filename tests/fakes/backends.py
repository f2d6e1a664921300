"""A scripted backend for tests, loaded by a real worker through AUDIOCHAT_BACKEND_CLASS.

What it does is chosen by the question, so one worker can play every part:
  "tokens:N"  answers with N one-word tokens, as fast as it can;
  "slow:N"    answers with N tokens, 50 ms apart;
  "fail:N"    yields N tokens, then the model raises;
  "crash:N"   yields N tokens, then kills its own worker process (SIGKILL), every time;
  "crash-once:PATH"  kills its worker the first time (creating PATH), answers after that;
  "hang:N"    yields one token, then blocks for N seconds without yielding;
  anything else is echoed back.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from shared.config import Settings
from worker.audio import Audio
from worker.backends.base import AnswerRequest, GenerationStats, TimedWord, TranscriptPiece


class ScriptedBackend:
    name = "scripted"
    hears_audio = True
    word_timestamps = True

    @classmethod
    def load(cls, settings: Settings) -> ScriptedBackend:
        return cls()

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None, words: bool = False
    ) -> Iterator[TranscriptPiece]:
        """Two pieces, "heard " and "N.N seconds", each over half the audio; with `words`, each
        word over its own quarter. The language is the asked one, or "en" as if detected."""
        seconds = len(audio) / 16_000
        quarter = seconds / 4
        first = (TimedWord("heard", 0.0, quarter),) if words else ()
        second = (
            (
                TimedWord(f"{seconds:.1f}", 2 * quarter, 3 * quarter),
                TimedWord("seconds", 3 * quarter, seconds),
            )
            if words
            else ()
        )
        heard = language or "en"
        yield TranscriptPiece("heard ", start=0.0, end=seconds / 2, words=first, language=heard)
        yield TranscriptPiece(
            f"{seconds:.1f} seconds", start=seconds / 2, end=seconds, words=second, language=heard
        )

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        command, _, count = request.question.partition(":")
        n = int(count) if count.isdigit() else 0
        if command == "tokens":
            for i in range(n):
                yield f"t{i} "
        elif command == "slow":
            for i in range(n):
                time.sleep(0.05)
                yield f"s{i} "
        elif command == "fail":
            for i in range(n):
                yield f"f{i} "
            raise RuntimeError("scripted failure")
        elif command == "crash":
            for i in range(n):
                yield f"c{i} "
            os.kill(os.getpid(), signal.SIGKILL)
        elif command == "crash-once":
            marker = Path(count)
            if not marker.exists():
                marker.touch()
                yield "about to crash "
                time.sleep(0.3)  # let the delta reach Redis before the worker dies
                os.kill(os.getpid(), signal.SIGKILL)
            yield "survived"
        elif command == "hang":
            yield "hanging "
            time.sleep(n)
        else:
            parts = len(request.audios)
            heard = f" with {parts} audio part{'s' if parts > 1 else ''}" if parts else ""
            if request.history:
                heard += f" after {len(request.history)} turns"
            yield f"echo{heard}: {request.question}"
            n = 1
        yield GenerationStats(prompt_tokens=1, completion_tokens=n, finish_reason="stop")


class SlowLoadingBackend(ScriptedBackend):
    """The scripted backend, taking 4 s to load like a real model: a worker that is up but
    cannot take jobs yet."""

    @classmethod
    def load(cls, settings: Settings) -> SlowLoadingBackend:
        time.sleep(4)
        return cls()
