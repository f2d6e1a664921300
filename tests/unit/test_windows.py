"""Cutting long audio into windows a model can take, at pauses, without losing a sample."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from worker.windows import Window, split_windows

RATE = 16_000


def noise(seconds: float, seed: int = 0, level: float = 0.3) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * RATE)) * level).astype(np.float32)


def silence(seconds: float) -> npt.NDArray[np.float32]:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def assert_covers(windows: list[Window], length: int, max_seconds: float) -> None:
    assert windows[0].start == 0 and windows[-1].end == length
    for before, after in itertools.pairwise(windows):
        assert before.end == after.start
    assert all(0 < w.seconds(RATE) <= max_seconds for w in windows)


def test_audio_within_the_limit_is_one_window() -> None:
    audio = noise(29.99)
    assert split_windows(audio, RATE, 30.0) == [Window(0, len(audio))]


def test_exactly_the_limit_is_one_window() -> None:
    audio = noise(30.0)
    assert split_windows(audio, RATE, 30.0) == [Window(0, len(audio))]


def test_cut_lands_in_the_pause() -> None:
    # Speech-like noise with one pause from 27.0 to 27.6 s.
    audio = np.concatenate([noise(27.0), silence(0.6), noise(20.0, seed=1)])
    windows = split_windows(audio, RATE, 30.0)
    assert len(windows) == 2
    cut = windows[0].end / RATE
    assert 27.0 < cut < 27.6
    assert_covers(windows, len(audio), 30.0)


def test_the_quietest_moment_wins_over_a_merely_quieter_one() -> None:
    audio = np.concatenate(
        [noise(26.0), noise(0.5, level=0.05), noise(2.0, seed=2), silence(0.5), noise(10.0)]
    )
    windows = split_windows(audio, RATE, 30.0)
    assert 28.5 < windows[0].end / RATE < 29.0


def test_audio_without_pauses_is_cut_at_the_longest_window() -> None:
    audio = noise(75.0)
    windows = split_windows(audio, RATE, 30.0)
    assert_covers(windows, len(audio), 30.0)
    # No pause to prefer: steady loudness gives windows of the full 30 s.
    assert [w.seconds(RATE) for w in windows] == [30.0, 30.0, 15.0]


def test_silence_is_cut_at_the_longest_window() -> None:
    audio = silence(61.0)
    windows = split_windows(audio, RATE, 30.0)
    assert [w.seconds(RATE) for w in windows] == [30.0, 30.0, 1.0]


@pytest.mark.parametrize("seconds", [30.01, 45.0, 70.0, 89.9, 600.0])
def test_every_sample_is_in_exactly_one_window(seconds: float) -> None:
    audio = np.concatenate([noise(seconds / 2), silence(0.3), noise(seconds / 2, seed=3)])
    windows = split_windows(audio, RATE, 30.0)
    assert_covers(windows, len(audio), 30.0)
    assert sum(w.end - w.start for w in windows) == len(audio)


def test_seventy_seconds_need_three_windows_wherever_the_pauses_are() -> None:
    # Pauses early in each window's search range still leave windows of at least 25 s.
    audio = np.concatenate([noise(25.2), silence(0.4), noise(25.0), silence(0.4), noise(19.0)])
    assert len(split_windows(audio, RATE, 30.0)) == 3


def test_a_shorter_limit_gives_more_windows() -> None:
    audio = noise(19.0)
    windows = split_windows(audio, RATE, 5.0)
    assert len(windows) == 4
    assert_covers(windows, len(audio), 5.0)


def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_windows(noise(1.0), RATE, 0.0)
