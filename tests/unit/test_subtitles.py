"""Subtitle cues from transcript segments, written as SubRip and WebVTT and read back."""

from __future__ import annotations

import srt
import webvtt

from api.subtitles import Cue, cues, to_srt, to_vtt
from shared.schemas import TranscriptSegment


def _seconds(timestamp: str) -> float:
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_cues_keep_known_times_and_skip_empty_segments() -> None:
    segments = [
        TranscriptSegment(start=0.0, end=1.25, text=" Mister Quilter "),
        TranscriptSegment(start=1.25, end=2.0, text="  "),
        TranscriptSegment(start=2.0, end=3.5, text="is the apostle"),
    ]
    assert cues(segments, 4.0) == [
        Cue(0.0, 1.25, "Mister Quilter"),
        Cue(2.0, 3.5, "is the apostle"),
    ]


def test_missing_times_come_from_the_neighbours_and_the_audio_end() -> None:
    segments = [
        TranscriptSegment(text="first"),
        TranscriptSegment(start=2.0, end=None, text="second"),
        TranscriptSegment(start=None, end=None, text="third"),
    ]
    assert cues(segments, 6.0) == [
        Cue(0.0, 2.0, "first"),
        Cue(2.0, 6.0, "second"),
        Cue(6.0, 6.0, "third"),
    ]


def test_times_never_go_back() -> None:
    segments = [
        TranscriptSegment(start=3.0, end=4.0, text="late"),
        TranscriptSegment(start=1.0, end=0.5, text="early and inverted"),
    ]
    timed = cues(segments, 5.0)
    assert [(c.start, c.end) for c in timed] == [(3.0, 4.0), (3.0, 3.0)]


def test_times_stay_within_the_audio() -> None:
    segments = [
        TranscriptSegment(start=0.0, end=7.0, text="runs past the end"),
        TranscriptSegment(start=8.0, end=9.0, text="after the end"),
    ]
    assert [(c.start, c.end) for c in cues(segments, 5.855)] == [(0.0, 5.855), (5.855, 5.855)]


def test_srt_parses_back_to_the_same_cues() -> None:
    timed = [Cue(0.0, 1.5, "one"), Cue(1.5, 3661.042, "two\nlines")]
    text = to_srt(timed)
    assert "00:00:01,500 --> 01:01:01,042" in text
    parsed = list(srt.parse(text))
    assert [s.index for s in parsed] == [1, 2]
    assert [(s.start.total_seconds(), s.end.total_seconds()) for s in parsed] == [
        (0.0, 1.5),
        (1.5, 3661.042),
    ]
    assert [s.content for s in parsed] == ["one", "two\nlines"]


def test_vtt_parses_back_and_escapes_markup() -> None:
    timed = [Cue(0.25, 1.0, "a <b> & c --> d"), Cue(1.0, 2.0, "next")]
    text = to_vtt(timed)
    assert text.startswith("WEBVTT\n\n")
    assert "-->" not in text.replace(" --> ", "")
    parsed = list(webvtt.from_string(text))
    assert [(_seconds(c.start), _seconds(c.end)) for c in parsed] == [(0.25, 1.0), (1.0, 2.0)]
    assert parsed[0].raw_text == "a &lt;b&gt; &amp; c --&gt; d"
    assert parsed[1].text == "next"


def test_no_cues_is_a_valid_empty_file() -> None:
    assert list(srt.parse(to_srt([]))) == []
    assert list(webvtt.from_string(to_vtt([]))) == []
