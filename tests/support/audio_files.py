"""Audio files made on the spot for tests: long recordings, other sample rates and layouts."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

from worker.audio import SAMPLE_RATE, decode_audio


def write_wav(path: Path, samples: npt.NDArray[np.float32], rate: int = SAMPLE_RATE) -> Path:
    """A 16-bit mono WAV file of `samples` (floats in [-1, 1]); samples decoded from 16-bit
    audio are written back exactly."""
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def long_speech(
    path: Path, clips: list[Path], seconds: float, pause: float = 0.8
) -> tuple[Path, list[tuple[float, float]]]:
    """Real speech clips, one after another with `pause` s of silence between them, repeated
    to exactly `seconds` long; returns the file and where its pauses are (start, end) in s."""
    decoded = [decode_audio(clip) for clip in clips]
    silence = np.zeros(round(pause * SAMPLE_RATE), dtype=np.float32)
    parts: list[npt.NDArray[np.float32]] = []
    pauses: list[tuple[float, float]] = []
    length = 0
    total = round(seconds * SAMPLE_RATE)
    while length < total:
        for clip in decoded:
            parts += [clip, silence]
            length += len(clip)
            pauses.append((length / SAMPLE_RATE, (length + len(silence)) / SAMPLE_RATE))
            length += len(silence)
    samples = np.concatenate(parts)[:total]
    return write_wav(path, samples), [p for p in pauses if p[0] < seconds]


def convert(source: Path, target: Path, rate: int, channels: int) -> Path:
    """`source` resampled to `rate` with `channels` channels, by sox (format from the suffix)."""
    subprocess.run(
        ["sox", str(source), "-r", str(rate), "-c", str(channels), str(target)],
        check=True,
        capture_output=True,
    )
    return target
