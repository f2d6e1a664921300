"""Decoding any common audio file to what the models take: 16 kHz mono float32 samples.

PyAV is imported when audio is decoded, not with this module: a model's code can then use
`Audio` and `SAMPLE_RATE` where PyAV is not installed (bench/gpu_check.py's GPU machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from shared.errors import InvalidAudio

if TYPE_CHECKING:
    import av

SAMPLE_RATE = 16_000

Audio = npt.NDArray[np.float32]


def _samples(frame: av.AudioFrame) -> Audio:
    samples: Audio = frame.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    return samples


def decode_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode the first audio stream of `path`, resampled to mono `sample_rate` by FFmpeg."""
    import av

    from shared.media import OPEN_OPTIONS

    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[Audio] = []
    try:
        with av.open(str(path), options=OPEN_OPTIONS) as container:
            for frame in container.decode(audio=0):
                chunks.extend(_samples(f) for f in resampler.resample(frame))
            chunks.extend(_samples(f) for f in resampler.resample(None))
    except (av.FFmpegError, IndexError) as exc:
        raise InvalidAudio(f"the audio could not be decoded: {exc}") from exc
    if not chunks:
        raise InvalidAudio("the audio contains no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False)
