"""Probing uploads: is this decodable audio in a format we accept, and how long is it.

The gateway runs this before it stores anything, so a job is only created for audio a worker
can decode. Decoding to model input happens in the worker (`worker/audio.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from shared.errors import AudioTooLong, InvalidAudio, TruncatedAudio, UnsupportedMediaType

# FFmpeg demuxer names of the containers we accept. Anything else, playlists above all (they
# make FFmpeg open other files or URLs), is refused before a single packet is read.
ACCEPTED_CONTAINERS = frozenset(
    {"wav", "w64", "flac", "mp3", "ogg", "matroska", "webm", "mov", "mp4", "m4a", "aac", "aiff"}
)


# Options for every FFmpeg open of audio. FFmpeg reads up to 5 MB to learn a stream's
# parameters; audio containers carry them in their first kilobytes, and with PCM WAV the full
# read cost 6 ms an open (measured), paid once by the gateway's probe and once per stage.
OPEN_OPTIONS = {"probesize": "8192"}


@dataclass(frozen=True)
class AudioInfo:
    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_seconds: float


# RIFF sizes that mean "unknown" (a recorder that streamed its WAV and never went back).
_RIFF_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def _check_riff_size(source: Path | BinaryIO) -> None:
    """A WAV whose RIFF header claims far more bytes than the file has is truncated or lies.

    FFmpeg quietly decodes whatever is there, so this is checked from the header itself.
    """
    if isinstance(source, Path):
        with source.open("rb") as handle:
            head = handle.read(12)
        size = source.stat().st_size
    else:
        position = source.tell()
        head = source.read(12)
        source.seek(0, 2)
        size = source.tell()
        source.seek(position)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    riff_size = int.from_bytes(head[4:8], "little")
    declared = riff_size + 8
    if riff_size not in _RIFF_UNKNOWN_SIZES and declared > size * 1.1 + 1024:
        raise TruncatedAudio(f"the WAV header says {declared} bytes, the file has {size}")


def probe_audio(source: Path | BinaryIO, max_seconds: float, time_limit: float = 10.0) -> AudioInfo:
    """Sniff the container from the bytes, decode the first audio stream, measure it.

    Only the accepted demuxers may even be tried (`format_whitelist`), and no protocol but
    local files may be opened, so a playlist can never make FFmpeg fetch anything. Decoding
    stops at `max_seconds` of audio or `time_limit` seconds of work, whichever comes first.
    """
    _check_riff_size(source)
    options = {
        "format_whitelist": ",".join(sorted(ACCEPTED_CONTAINERS)),
        "protocol_whitelist": "file",
        **OPEN_OPTIONS,
    }
    try:
        container = av.open(
            str(source) if isinstance(source, Path) else source, mode="r", options=options
        )
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
        deadline = time.monotonic() + time_limit
        try:
            for frame in container.decode(stream):
                rate = frame.sample_rate or rate
                samples += frame.samples
                if rate and samples / rate > max_seconds:
                    raise AudioTooLong(f"the audio is longer than {max_seconds:g} s")
                if time.monotonic() > deadline:
                    raise InvalidAudio(f"decoding the audio took longer than {time_limit:g} s")
        except av.FFmpegError as exc:
            raise InvalidAudio(f"the audio could not be decoded: {exc}") from exc
        if not samples or not rate:
            raise InvalidAudio("the upload contains no audio samples")
        declared = container.duration / 1_000_000 if container.duration else None
        if declared is not None and declared > samples / rate * 1.1 + 0.5:
            raise TruncatedAudio(
                f"the header says {declared:.1f} s, but only {samples / rate:.1f} s decode"
            )
        return AudioInfo(
            container=container.format.name,
            codec=stream.codec_context.name,
            sample_rate=int(rate),
            channels=stream.codec_context.channels,
            duration_seconds=samples / rate,
        )
