"""Timed transcript segments as subtitle cues, and cues as SubRip (`.srt`) or WebVTT text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.schemas import TranscriptSegment


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


def cues(segments: Sequence[TranscriptSegment], duration: float) -> list[Cue]:
    """Non-empty segments with both times known and never going back.

    A backend may leave a time out: a missing start is the previous cue's end, a missing end is
    the next known start (or the end of the audio). Subtitle players need times that increase,
    and a model may place the last words after the end of the audio (Whisper does).
    """
    out: list[Cue] = []
    previous_start = previous_end = 0.0
    for index, segment in enumerate(segments):
        text = " ".join(segment.text.split())
        if not text:
            continue
        start = segment.start if segment.start is not None else previous_end
        end = segment.end if segment.end is not None else _next_start(segments, index, duration)
        start = min(max(start, previous_start), duration)
        end = min(max(end, start), duration)
        out.append(Cue(round(start, 3), round(end, 3), text))
        previous_start, previous_end = start, end
    return out


def _next_start(segments: Sequence[TranscriptSegment], index: int, duration: float) -> float:
    for later in segments[index + 1 :]:
        if later.start is not None:
            return later.start
    return duration


def _timestamp(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def to_srt(items: Sequence[Cue]) -> str:
    """SubRip: numbered cues, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each."""
    blocks = [
        f"{n}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{c.text}\n"
        for n, c in enumerate(items, start=1)
    ]
    return "\n".join(blocks)


def _vtt_text(text: str) -> str:
    # Cue text is markup: `<` and `&` start tags and entities, and `-->` may not appear.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(items: Sequence[Cue]) -> str:
    """WebVTT: the `WEBVTT` header, then cues `HH:MM:SS.mmm --> HH:MM:SS.mmm`."""
    blocks = [
        f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{_vtt_text(c.text)}\n"
        for c in items
    ]
    return "\n".join(["WEBVTT\n", *blocks])
