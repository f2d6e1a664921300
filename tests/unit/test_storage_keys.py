from __future__ import annotations

import pytest

from shared.storage import _checked_key, audio_key, escape_filename, unescape_filename


def test_audio_key_is_chosen_by_the_server() -> None:
    assert audio_key("abc123") == "jobs/abc123/input"


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "a\\b.wav", "nul\x00.wav", "x" * 5000, "\u202egnp.wav", "héllo.wav"],
)
def test_filenames_become_escaped_ascii_metadata(name: str) -> None:
    escaped = escape_filename(name)
    assert escaped is not None
    assert (
        escaped.isascii() and "/" not in escaped and "\\" not in escaped and "\x00" not in escaped
    )
    assert len(escaped) <= 255 * 9
    assert unescape_filename(escaped) == name[:255]


@pytest.mark.parametrize("key", ["../x", "jobs/../x", "/abs", "jobs//x", "jobs/a b", ""])
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        _checked_key(key)
