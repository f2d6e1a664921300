"""Text pieces from a model on their way to events: coalesced deltas, timed segments, stats."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from shared.events import EventPublisher
from shared.schemas import EventName, TranscriptSegment, TranscriptWord
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


@dataclass
class TimedTranscript:
    """What the windows of a transcript add up to besides its text: timed segments, the words
    with their times, and the language the model reported first."""

    segments: list[TranscriptSegment] = field(default_factory=list)
    words: list[TranscriptWord] = field(default_factory=list)
    language: str | None = None


def collect_segments(
    pieces: Iterable[TranscriptPiece],
    timed: TimedTranscript,
    offset: float,
    window_end: float,
) -> Iterator[str]:
    """The text of a window's transcript pieces; each timed piece goes into `timed.segments`
    and its words into `timed.words`, times shifted by `offset` (where the window starts in the
    job's audio). Pieces without times (models that stream tokens, not timed segments) make
    one segment: the window."""
    segments = timed.segments
    untimed: list[str] = []
    for piece in pieces:
        timed.language = timed.language or piece.language
        timed.words.extend(
            TranscriptWord(
                word=word.word,
                start=round(word.start + offset, 3),
                end=round(word.end + offset, 3),
            )
            for word in piece.words
        )
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


def split_stats(
    items: Iterable[str | GenerationStats], stats: list[GenerationStats]
) -> Iterator[str]:
    """The text pieces of an answer stream; its GenerationStats go into `stats`."""
    for item in items:
        if isinstance(item, GenerationStats):
            stats.append(item)
        else:
            yield item
