"""`POST /v1/audio/transcriptions` through the official OpenAI client, against a real gateway,
Redis, S3 server and Celery workers; the embedded model makes real transcripts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jiwer
import openai
import pytest
import srt
import webvtt
from openai import OpenAI

from tests.support.stack import Stack

REFERENCE = (
    "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES AND WE ARE GLAD TO WELCOME HIS GOSPEL"
)


def _words(text: str) -> str:
    text = re.sub(r"\bmr\b\.?", "mister", text.lower())
    return " ".join(re.sub(r"[^a-z' ]", " ", text).split())


def _assert_close_to_reference(text: str) -> None:
    assert jiwer.wer(_words(REFERENCE), _words(text)) < 0.2, text


def _seconds(timestamp: str) -> float:
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _assert_increasing(times: list[tuple[float, float]], duration: float) -> None:
    assert times, "no cues"
    for start, end in times:
        assert 0 <= start <= end <= duration + 0.01
    starts = [start for start, _ in times]
    assert starts == sorted(starts)


@pytest.fixture
def client(stack: Stack) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0, timeout=120) as client:
        yield client


@pytest.fixture
def flac(shared_audio: Path) -> Path:
    return shared_audio / "1272-128104-0000.flac"


@pytest.mark.slow
def test_json_is_the_transcript_and_the_job_is_a_transcription(
    stack: Stack, client: OpenAI, flac: Path
) -> None:
    with flac.open("rb") as handle:
        result = client.audio.transcriptions.create(model="embedded", file=handle, language="en")
    _assert_close_to_reference(result.text)
    extra = result.model_extra or {}
    job = stack.job(extra["job_id"])
    assert job["task"] == "transcribe" and job["status"] == "succeeded"
    assert job["transcript"] == result.text and job["answer"] is None
    assert result.usage is not None and result.usage.type == "duration"


@pytest.mark.slow
def test_text_is_the_bare_transcript(client: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        text = client.audio.transcriptions.create(
            model="embedded", file=handle, response_format="text"
        )
    assert isinstance(text, str) and not text.startswith("{")
    _assert_close_to_reference(text)


@pytest.mark.slow
def test_srt_parses_and_its_times_increase(client: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        text = client.audio.transcriptions.create(
            model="embedded", file=handle, response_format="srt"
        )
    subtitles = list(srt.parse(text))
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
    _assert_increasing([(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles], 5.855)
    _assert_close_to_reference(" ".join(s.content for s in subtitles))


@pytest.mark.slow
def test_vtt_parses_and_its_times_increase(client: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        text = client.audio.transcriptions.create(
            model="embedded", file=handle, response_format="vtt"
        )
    assert text.startswith("WEBVTT")
    captions = list(webvtt.from_string(text))
    _assert_increasing([(_seconds(c.start), _seconds(c.end)) for c in captions], 5.855)
    _assert_close_to_reference(" ".join(c.text for c in captions))


@pytest.mark.slow
def test_verbose_json_has_timed_segments(client: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        result = client.audio.transcriptions.create(
            model="embedded",
            file=handle,
            response_format="verbose_json",
            timestamp_granularities=["segment"],
            prompt="Mister Quilter",
        )
    assert result.duration == pytest.approx(5.855, abs=0.01)
    assert result.segments
    _assert_increasing([(s.start, s.end) for s in result.segments], result.duration)
    assert [s.id for s in result.segments] == list(range(len(result.segments)))
    _assert_close_to_reference(" ".join(s.text for s in result.segments))
    _assert_close_to_reference(result.text)


@pytest.mark.slow
def test_stream_sends_deltas_then_the_whole_text(client: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        events = list(
            client.audio.transcriptions.create(model="embedded", file=handle, stream=True)
        )
    types = [event.type for event in events]
    assert types[-1] == "transcript.text.done"
    assert set(types[:-1]) == {"transcript.text.delta"} and len(types) > 1
    done = events[-1]
    assert done.type == "transcript.text.done"
    deltas = "".join(e.delta for e in events if e.type == "transcript.text.delta")
    assert " ".join(deltas.split()) == " ".join(done.text.split())
    _assert_close_to_reference(done.text)


def _raw_stream(stack: Stack, path: Path, fields: dict[str, str]) -> list[str]:
    """The `data:` payloads of a streamed transcription, split as for a chat stream."""
    with (
        path.open("rb") as handle,
        httpx.stream(
            "POST",
            f"{stack.url}/v1/audio/transcriptions",
            data=fields,
            files={"file": (path.name, handle)},
            timeout=60,
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        raw = response.read().decode()
    assert "\r" not in raw and raw.endswith("data: [DONE]\n\n")
    events = [block for block in raw.split("\n\n") if block and not block.startswith(":")]
    assert all(block.startswith("data: ") and "\n" not in block for block in events), events
    return [block[len("data: ") :] for block in events]


def test_raw_stream_ends_with_done(stack: Stack, flac: Path) -> None:
    payloads = _raw_stream(stack, flac, {"model": "echo", "stream": "true"})
    assert payloads[-1] == "[DONE]"
    events: list[dict[str, Any]] = [json.loads(p) for p in payloads[:-1]]
    assert events[0] == {
        "type": "transcript.text.delta",
        "delta": "this is the echo backend's transcript",
    }
    assert events[-1] == {
        "type": "transcript.text.done",
        "text": "this is the echo backend's transcript",
    }


def test_echo_segments_span_the_audio(client: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        result = client.audio.transcriptions.create(
            model="echo", file=handle, response_format="verbose_json"
        )
    assert [(s.start, s.end) for s in result.segments or []] == [(0.0, 5.855)]


def test_unknown_model_is_openais_404(client: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle, pytest.raises(openai.NotFoundError) as caught:
        client.audio.transcriptions.create(model="whisper-1", file=handle)
    assert caught.value.code == "unknown-model"


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"response_format": "diarized_json"}, "response_format"),
        ({"timestamp_granularities": ["character"]}, "timestamp_granularities.0"),
        ({"language": "English"}, "language"),
    ],
)
def test_bad_options_are_openais_400(
    client: OpenAI, flac: Path, options: dict[str, Any], param: str
) -> None:
    with flac.open("rb") as handle, pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="echo", file=handle, **options)
    assert caught.value.code == "invalid-request"
    assert caught.value.param == param


def test_a_file_that_is_not_audio_is_a_415(client: OpenAI, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not audio at all\n" * 50)
    with path.open("rb") as handle, pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(model="echo", file=handle)
    assert caught.value.status_code == 415
    assert caught.value.code == "unsupported-media-type"
