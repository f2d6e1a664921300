"""The language a model reports hearing reaches the job record, the `transcript.completed`
event and the OpenAI transcription response; a language the job asks for wins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import start_stack
from tests.support.processes import RedisServer
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def reporting(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    env = {"AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'language-objects'}",
           "AUDIOCHAT_MODEL": "echo"}  # fmt: skip
    worker = {"AUDIOCHAT_BACKEND_CLASS": "tests.fakes.languages:LanguageReportingBackend"}
    running = start_stack(workdir / "language", redis_server.url(15), env, {"worker": worker})
    yield running
    running.close()


def verbose(stack: Stack, clip: Path, **fields: str) -> dict[str, Any]:
    with clip.open("rb") as handle:
        response = stack.http.post(
            "/v1/audio/transcriptions",
            data={"model": "echo", "response_format": "verbose_json", **fields},
            files={"file": (clip.name, handle, "audio/flac")},
        )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_the_language_heard_most_is_reported(reporting: Stack, shared_audio: Path) -> None:
    job = reporting.submit_audio(shared_audio / "1272-128104-0000.flac")
    events = reporting.events(job["id"])
    final = reporting.job(job["id"])
    assert final["status"] == "succeeded", final
    assert final["detected_language"] == "de"
    completed = next(e for e in events if e.event == "transcript.completed")
    assert completed.data == {"text": final["transcript"], "language": "de"}
    assert verbose(reporting, shared_audio / "1272-128104-0000.flac")["language"] == "de"


def test_a_requested_language_wins(reporting: Stack, shared_audio: Path) -> None:
    body = verbose(reporting, shared_audio / "1272-128104-0000.flac", language="fr")
    assert body["language"] == "fr"
    assert reporting.job(body["job_id"])["detected_language"] == "fr"


def test_a_typed_question_reports_no_language(reporting: Stack) -> None:
    final = reporting.run(reporting.submit_text("hello"))
    assert final["status"] == "succeeded"
    assert final["detected_language"] is None
