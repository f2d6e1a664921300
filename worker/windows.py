"""Splitting long audio into windows a model can take, cut where the speech pauses.

Qwen-Audio models hear at most 30 s at a time. Longer audio is cut into consecutive windows of
at most that length, covering every sample (nothing is dropped), each cut placed at the
quietest moment near the end of the window so a word is rarely split in two. Quiet is measured
by short-time energy, smoothed over a fraction of a second: no VAD model, numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

# Energy is measured in frames of 10 ms and smoothed over 200 ms, so a cut lands in a pause
# rather than in the gap between two syllables.
FRAME_SECONDS = 0.01
SMOOTH_SECONDS = 0.2
# A cut is looked for in the last few seconds of a window: windows stay close to the longest
# allowed, so a given duration always needs the fewest windows.
SEARCH_SECONDS = 5.0
# Moments within 1 dB of the quietest are as good a place to cut: level differences that small
# are the noise floor wavering, not a pause.
QUIET_RATIO = 10 ** (1 / 10)


@dataclass(frozen=True)
class Window:
    """Samples `start` to `end` (exclusive) of the audio."""

    start: int
    end: int

    def seconds(self, sample_rate: int) -> float:
        return (self.end - self.start) / sample_rate


def frame_energy(audio: npt.NDArray[np.float32], frame: int) -> npt.NDArray[np.float64]:
    """Mean energy of each whole or partial frame of `frame` samples."""
    count = -(-len(audio) // frame)
    padded = np.zeros(count * frame, dtype=np.float64)
    padded[: len(audio)] = audio
    squares: npt.NDArray[np.float64] = np.square(padded).reshape(count, frame).mean(axis=1)
    return squares


def split_windows(
    audio: npt.NDArray[np.float32],
    sample_rate: int,
    max_seconds: float,
    search_seconds: float = SEARCH_SECONDS,
) -> list[Window]:
    """Consecutive windows of at most `max_seconds` covering all of `audio`, cut at pauses."""
    if max_seconds <= 0:
        raise ValueError("max_seconds must be positive")
    total = len(audio)
    frame = max(1, round(sample_rate * FRAME_SECONDS))
    # Whole frames only, so a window never exceeds the limit by a fraction of a frame.
    longest = max(1, int(max_seconds * sample_rate) // frame) * frame
    if total <= longest:
        return [Window(0, total)]
    energy = frame_energy(audio, frame)
    width = max(1, round(SMOOTH_SECONDS / FRAME_SECONDS))
    smooth = np.convolve(energy, np.ones(width) / width, mode="same")
    search = max(1, round(min(search_seconds, max_seconds / 2) * sample_rate) // frame)

    windows: list[Window] = []
    start = 0
    while total - start > longest:
        last = (start + longest) // frame  # the last frame boundary the window may end at
        first = max(start // frame + 1, last - search)
        candidates = smooth[first : last + 1]
        # The latest of the quietest boundaries: audio without pauses (or pure silence) is cut
        # at the longest window allowed.
        quiet = np.flatnonzero(candidates <= candidates.min() * QUIET_RATIO + 1e-12)
        cut = first + int(quiet[-1])
        end = cut * frame
        windows.append(Window(start, end))
        start = end
    windows.append(Window(start, total))
    return windows
