"""Probing uploads with PyAV: real files made by ffmpeg, and things that are not audio."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from shared.errors import AudioTooLong, InvalidAudio, UnsupportedMediaType
from shared.media import probe_audio


def _ffmpeg(tmp_path: Path, name: str, *args: str) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is not installed: run `make test` (it installs it)")
    out = tmp_path / name
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
            *args,
            str(out),
        ],
        check=True,
    )
    return out


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("a.wav", ()),
        ("a.flac", ()),
        ("a.mp3", ()),
        ("a.ogg", ("-c:a", "libopus")),
        ("a.webm", ("-c:a", "libopus")),
        ("a.m4a", ("-c:a", "aac")),
    ],
)
def test_common_formats_are_accepted(tmp_path: Path, name: str, args: tuple[str, ...]) -> None:
    info = probe_audio(_ffmpeg(tmp_path, name, *args), max_seconds=60)
    assert 1.9 < info.duration_seconds < 2.2


def test_not_audio_is_unsupported(tmp_path: Path) -> None:
    html = tmp_path / "page.wav"
    html.write_text("<!doctype html><html><body><h1>hello</h1></body></html>")
    playlist = tmp_path / "list.wav"
    playlist.write_text("#EXTM3U\n#EXTINF:10,\nhttp://example.com/a.mp3\n")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.txt", "hello")
    for source in (html, playlist, io.BytesIO(archive.getvalue())):
        with pytest.raises(UnsupportedMediaType):
            probe_audio(source, max_seconds=60)


def test_too_long_audio_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AudioTooLong):
        probe_audio(_ffmpeg(tmp_path, "a.flac"), max_seconds=1.0)


def test_truncated_audio_is_invalid_or_unsupported(tmp_path: Path) -> None:
    whole = _ffmpeg(tmp_path, "a.mp3").read_bytes()
    with pytest.raises((InvalidAudio, UnsupportedMediaType)):
        probe_audio(io.BytesIO(whole[:200]), max_seconds=60)
