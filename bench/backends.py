"""A backend for the fan-out benchmark, loaded by a real worker through
`AUDIOCHAT_BACKEND_CLASS=bench.backends:TickBackend`.

Asked `ticks:N:MS:NAME`, it waits until the file NAME appears in `$BENCH_GO_DIR` (so every
client is following before the first tick), then answers with N pieces, MS milliseconds apart,
each the wall-clock time it was yielded: the pipeline publishes a piece as soon as it is
yielded, so a client's receipt time minus the stamp is publish-to-receipt latency.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from shared.config import Settings
from worker.audio import Audio
from worker.backends.base import AnswerRequest, GenerationStats, TranscriptPiece

GO_DIR_ENV = "BENCH_GO_DIR"


class TickBackend:
    name = "bench-tick"
    hears_audio = False

    @classmethod
    def load(cls, settings: Settings) -> TickBackend:
        return cls()

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None
    ) -> Iterator[TranscriptPiece]:
        yield TranscriptPiece("tick")

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        command, _, rest = request.question.partition(":")
        if command != "ticks":
            yield request.question
            yield GenerationStats(prompt_tokens=0, completion_tokens=1, finish_reason="stop")
            return
        count, interval_ms, name = rest.split(":", 2)
        go = Path(os.environ.get(GO_DIR_ENV, ".")) / name
        deadline = time.monotonic() + 600
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(int(count)):
            time.sleep(int(interval_ms) / 1000)
            yield f"{time.time():.6f};"
        yield GenerationStats(prompt_tokens=0, completion_tokens=int(count), finish_reason="stop")
