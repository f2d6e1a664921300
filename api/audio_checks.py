"""Checking audio before anything is stored: its size, and that it decodes as audio in time."""

from __future__ import annotations

from typing import BinaryIO

from shared.config import Settings
from shared.errors import InvalidAudio, UploadTooLarge
from shared.media import probe_audio


def check_audio(settings: Settings, stream: BinaryIO, max_seconds: float, field: str) -> float:
    """Seconds of audio in `stream`, after checking its size and that it decodes as audio
    of at most `max_seconds`; the stream is left at its start."""
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    if size > settings.max_upload_bytes:
        raise UploadTooLarge(f"the upload is larger than {settings.max_upload_bytes} bytes")
    if size == 0:
        raise InvalidAudio("the audio file is empty", field=field)
    info = probe_audio(stream, max_seconds, settings.probe_time_limit_seconds)
    stream.seek(0)
    return round(info.duration_seconds, 3)
