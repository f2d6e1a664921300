"""Text pieces from a model on their way to events: coalesced deltas, timed segments, stats."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from shared.events import EventPublisher
from shared.schemas import EventName, TranscriptSegment
from worker.backends.base import GenerationStats, TranscriptPiece


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


def collect_segments(
    pieces: Iterable[TranscriptPiece],
    segments: list[TranscriptSegment],
    offset: float,
    window_end: float,
) -> Iterator[str]:
    """The text of a window's transcript pieces; each timed piece goes into `segments`, its
    times shifted by `offset` (where the window starts in the job's audio). Pieces without
    times (models that stream tokens, not timed segments) make one segment: the window."""
    untimed: list[str] = []
    for piece in pieces:
        if piece.start is None and piece.end is None:
            untimed.append(piece.text)
        else:
            segments.append(
                TranscriptSegment(
                    text=piece.text.strip(),
                    start=None if piece.start is None else round(piece.start + offset, 3),
                    end=None if piece.end is None else round(piece.end + offset, 3),
                )
            )
        yield piece.text
    text = "".join(untimed).strip()
    if text:
        segments.append(
            TranscriptSegment(text=text, start=round(offset, 3), end=round(window_end, 3))
        )


def note_languages(
    pieces: Iterable[TranscriptPiece], languages: list[str]
) -> Iterator[TranscriptPiece]:
    """The pieces as they come; the language each one names, if any, goes into `languages`."""
    for piece in pieces:
        if piece.language:
            languages.append(piece.language)
        yield piece


def split_stats(
    items: Iterable[str | GenerationStats], stats: list[GenerationStats]
) -> Iterator[str]:
    """The text pieces of an answer stream; its GenerationStats go into `stats`."""
    for item in items:
        if isinstance(item, GenerationStats):
            stats.append(item)
        else:
            yield item
