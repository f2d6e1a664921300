"""Probing uploads: is this decodable audio in a format we accept, and how long is it.

The gateway runs this before it stores anything, so a job is only created for audio a worker
can decode. Decoding to model input happens in the worker (`worker/audio.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from shared.errors import AudioTooLong, InvalidAudio, UnsupportedMediaType

# FFmpeg demuxer names of the containers we accept. Anything else, playlists above all (they
# make FFmpeg open other files or URLs), is refused before a single packet is read.
ACCEPTED_CONTAINERS = frozenset(
    {"wav", "w64", "flac", "mp3", "ogg", "matroska", "webm", "mov", "mp4", "m4a", "aac", "aiff"}
)


@dataclass(frozen=True)
class AudioInfo:
    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_seconds: float


def probe_audio(source: Path | BinaryIO, max_seconds: float) -> AudioInfo:
    """Sniff the container from the bytes, decode the first audio stream, measure it."""
    try:
        container = av.open(str(source) if isinstance(source, Path) else source, mode="r")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise UnsupportedMediaType("the upload is not a recognised audio format") from exc
    with container:
        names = set(container.format.name.split(","))
        if not names & ACCEPTED_CONTAINERS:
            raise UnsupportedMediaType(f"container {container.format.name!r} is not accepted")
        if not container.streams.audio:
            raise UnsupportedMediaType("the upload has no audio stream")
        stream = container.streams.audio[0]
        samples = 0
        rate = stream.rate or stream.codec_context.sample_rate
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate or rate
                samples += frame.samples
                if rate and samples / rate > max_seconds:
                    raise AudioTooLong(f"the audio is longer than {max_seconds:g} s")
        except av.FFmpegError as exc:
            raise InvalidAudio(f"the audio could not be decoded: {exc}") from exc
        if not samples or not rate:
            raise InvalidAudio("the upload contains no audio samples")
        return AudioInfo(
            container=container.format.name,
            codec=stream.codec_context.name,
            sample_rate=int(rate),
            channels=stream.codec_context.channels,
            duration_seconds=samples / rate,
        )
