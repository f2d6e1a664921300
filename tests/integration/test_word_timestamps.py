"""Word timestamps and the transcript's language, through the OpenAI transcription endpoint and
through REST jobs: the scripted backend gives words quickly; the embedded model, real ones."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import jiwer
import pytest
from openai import OpenAI

from tests.support.stack import Stack

DURATION = 5.855


@pytest.fixture
def flac(shared_audio: Path) -> Path:
    return shared_audio / "1272-128104-0000.flac"


def _client(stack: Stack) -> OpenAI:
    return OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture
def scripted(fake_stack: Stack) -> Iterator[OpenAI]:
    with _client(fake_stack) as client:
        yield client


def test_verbose_json_has_words_when_asked(scripted: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        result = scripted.audio.transcriptions.create(
            model="echo",
            file=handle,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    quarter = round(DURATION / 4, 3)
    assert [(w.word, w.start, w.end) for w in result.words or []] == [
        ("heard", 0.0, quarter),
        ("5.9", round(2 * quarter, 3), round(3 * DURATION / 4, 3)),
        ("seconds", round(3 * DURATION / 4, 3), DURATION),
    ]
    # Only words were asked for: no segments, as OpenAI answers.
    assert result.segments is None
    assert result.language == "en"


def test_both_granularities_and_an_asked_language(scripted: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        result = scripted.audio.transcriptions.create(
            model="echo",
            file=handle,
            language="de",
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert len(result.words or []) == 3 and len(result.segments or []) == 2
    assert result.language == "de"


def test_without_word_granularity_there_are_no_words(scripted: OpenAI, flac: Path) -> None:
    with flac.open("rb") as handle:
        result = scripted.audio.transcriptions.create(
            model="echo", file=handle, response_format="verbose_json"
        )
    assert result.words is None and len(result.segments or []) == 2


def test_a_rest_job_asking_for_words_has_them_in_its_record_and_events(
    fake_stack: Stack, flac: Path
) -> None:
    job = fake_stack.submit_audio(flac, model="echo", word_timestamps="true")
    events = fake_stack.events(job["id"])
    final = fake_stack.job(job["id"])
    assert final["word_timestamps"] is True and final["transcript_language"] == "en"
    assert [w["word"] for w in final["words"]] == ["heard", "5.9", "seconds"]
    (completed,) = [e.data for e in events if e.event == "transcript.completed"]
    assert completed == {"text": final["transcript"], "language": "en", "words": final["words"]}
    # Times are from the start of the job's audio: a second part's words come after the first.
    with flac.open("rb") as first, flac.open("rb") as second:
        response = fake_stack.http.post(
            "/v1/jobs",
            data={"model": "echo", "word_timestamps": "true"},
            files=[("audio", ("a.flac", first)), ("audio", ("b.flac", second))],
        )
    two = fake_stack.run(response.json())
    starts = [w["start"] for w in two["words"]]
    assert len(starts) == 6 and starts == sorted(starts)
    assert two["words"][3] == {"word": "heard", "start": DURATION, "end": round(DURATION * 1.25, 3)}


def test_a_job_not_asking_gets_no_words(fake_stack: Stack, flac: Path) -> None:
    final = fake_stack.run(fake_stack.submit_audio(flac, model="echo"))
    assert final["words"] is None and final["transcript_language"] == "en"
    (completed,) = [
        e.data for e in fake_stack.events(final["id"]) if e.event == "transcript.completed"
    ]
    assert "words" not in completed


def test_a_backend_without_word_times_gives_none_and_no_language(
    local_stack: Stack, flac: Path
) -> None:
    # The echo backend neither times words nor reports a language (like the Qwen backends).
    final = local_stack.run(local_stack.submit_audio(flac, model="echo", word_timestamps="true"))
    assert final["status"] == "succeeded"
    assert final["words"] == [] and final["transcript_language"] is None
    with _client(local_stack) as client, flac.open("rb") as handle:
        result = client.audio.transcriptions.create(
            model="echo",
            file=handle,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    assert result.words == [] and result.language == "unknown"


@pytest.mark.slow
def test_the_embedded_model_times_real_words(stack: Stack, flac: Path) -> None:
    reference = (
        "mister quilter is the apostle of the middle classes and we are glad to welcome his gospel"
    )
    with _client(stack) as client, flac.open("rb") as handle:
        result = client.audio.transcriptions.create(
            model="embedded",
            file=handle,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    words = result.words or []
    heard = " ".join(re.sub(r"[^a-z' ]", " ", w.word.lower()).strip() for w in words)
    heard = re.sub(r"\bmr\b", "mister", " ".join(heard.split()))
    assert jiwer.wer(reference, heard) < 0.2, heard
    assert all(0 <= w.start <= w.end <= DURATION + 0.01 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert result.language == "en"
