"""The qwen2-audio backend in a real worker, on a tiny random-weight checkpoint built offline.

The model's text is garbage, so these tests assert on structure: statuses, events, windows,
segment times, token counts that show what reached the model, failure codes. Never wording.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.workers import WorkerRegistry
from testbed import tiny_qwen2_audio
from testbed.processes import RedisServer, free_port
from tests.conftest import start_stack
from tests.fakes.qwen2_audio import FAILURE
from tests.support.audio_files import convert, long_speech
from tests.support.stack import SseEvent, Stack

pytestmark = pytest.mark.slow

CLIP = "1272-128104-0000.flac"  # 5.855 s, 16 kHz
CLIP_24K = "1089_134686_000007_000004.wav"  # 9.0 s, 24 kHz
# Audio tokens the encoder makes of each clip (one per 40 ms): the processor's expansion.
CLIP_AUDIO_TOKENS = 146
CLIP_24K_AUDIO_TOKENS = 225
TIMEOUT = 240


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_qwen2_audio.build(tmp_path_factory.mktemp("tiny-qwen2-audio"))


def _start(workdir: Path, redis_url: str, name: str, worker_env: dict[str, str]) -> Stack:
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / name / 'objects'}",
        "AUDIOCHAT_MODEL": "qwen2-audio",
        # Belt and braces: the backend loads with local_files_only, and nothing may try the hub.
        "HF_HUB_OFFLINE": "1",
    }
    return start_stack(workdir / name, redis_url, env, {f"worker-{name}": worker_env})


@pytest.fixture(scope="module")
def qwen2(workdir: Path, redis_server: RedisServer, checkpoint: Path) -> Iterator[Stack]:
    worker = {
        "AUDIOCHAT_MODEL_PATH": str(checkpoint),
        "AUDIOCHAT_WORKER_METRICS_PORT": str(free_port()),
    }
    running = _start(workdir, redis_server.url(6), "qwen2-audio", worker)
    yield running
    running.close()


def follow(stack: Stack, job: dict[str, Any]) -> tuple[list[SseEvent], dict[str, Any]]:
    """A job's whole event stream and its final record."""
    events = stack.events(job["id"], timeout=TIMEOUT)
    return events, stack.job(job["id"])


def usage(events: list[SseEvent]) -> dict[str, Any]:
    return next(e.data for e in events if e.event == "answer.completed")


def submit_parts(stack: Stack, clips: list[Path], **fields: Any) -> dict[str, Any]:
    handles = [clip.open("rb") for clip in clips]
    try:
        response = stack.http.post(
            "/v1/jobs",
            data={k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()},
            files=[("audio", (c.name, h)) for c, h in zip(clips, handles, strict=True)],
        )
    finally:
        for handle in handles:
            handle.close()
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def test_worker_reports_its_device_and_memory(qwen2: Stack) -> None:
    (worker,) = WorkerRegistry(qwen2.redis()).live_workers("qwen2-audio")
    assert worker.device in ("cpu", "cuda:0")
    assert worker.memory_bytes is not None and worker.memory_bytes > 0
    # Several stages at once by default, their generation batched.
    assert worker.concurrency == 8


def test_the_batch_engine_reports_its_steps_and_rows(qwen2: Stack) -> None:
    jobs = [qwen2.submit_text(f"Question {i}?", max_new_tokens=12) for i in range(4)]
    for job in jobs:
        assert follow(qwen2, job)[1]["status"] == "succeeded"
    port = qwen2.workers[0].env["AUDIOCHAT_WORKER_METRICS_PORT"]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text

    def value(name: str) -> float:
        found = re.search(rf'^{name}\{{model="qwen2-audio"\}} (\S+)$', metrics, re.M)
        assert found, name
        return float(found.group(1))

    steps = value("audiochat_worker_batch_steps_total")
    assert steps > 0 and value("audiochat_worker_batch_rows_total") >= steps
    assert value("audiochat_worker_batch_capacity") == 8
    assert value("audiochat_worker_batch_running") == 0


def test_spoken_question_is_transcribed_then_answered_hearing_the_audio(
    qwen2: Stack, shared_audio: Path
) -> None:
    events, final = follow(qwen2, qwen2.submit_audio(shared_audio / CLIP, max_new_tokens=6))
    assert final["status"] == "succeeded", final
    statuses = [e.data["status"] for e in events if e.event == "status"]
    assert statuses == ["queued", "transcribing", "answering", "succeeded"]
    names = [e.event for e in events]
    assert "transcript.delta" in names
    assert names.index("transcript.completed") < names.index("answer.completed")
    assert final["transcript"] and final["answer"]
    assert final["transcript_windows"] == 1
    # The model gives no times: the whole clip is one segment.
    assert final["segments"] == [{"start": 0.0, "end": 5.855, "text": final["transcript"]}]
    streamed = "".join(e.data["text"] for e in events if e.event == "answer.delta")
    assert streamed.strip() == final["answer"]
    # A spoken question is heard, not read: the clip's audio tokens are in the prompt.
    assert usage(events)["prompt_tokens"] > CLIP_AUDIO_TOKENS
    assert 1 <= usage(events)["completion_tokens"] <= 6


def test_question_about_audio_gives_the_model_the_audio(qwen2: Stack, shared_audio: Path) -> None:
    question = "What is the speaker's mood?"
    heard_events, heard = follow(
        qwen2, qwen2.submit_audio(shared_audio / CLIP, question=question, max_new_tokens=4)
    )
    typed_events, typed = follow(qwen2, qwen2.submit_text(question, max_new_tokens=4))
    assert heard["status"] == typed["status"] == "succeeded"
    assert heard["transcript"] and typed["transcript"] is None
    assert heard["answer"] and typed["answer"]
    extra = usage(heard_events)["prompt_tokens"] - usage(typed_events)["prompt_tokens"]
    assert extra > CLIP_AUDIO_TOKENS


def test_several_parts_and_history_reach_the_model(qwen2: Stack, shared_audio: Path) -> None:
    clips = [shared_audio / CLIP, shared_audio / CLIP_24K]
    history = [
        {"question": "Who is speaking?", "answer": "A man reading aloud."},
        {"question": "Is he calm?", "answer": "Yes, quite calm."},
    ]
    question = "Compare the two clips."
    one_events, one = follow(qwen2, submit_parts(qwen2, clips[:1], question=question))
    two_events, two = follow(qwen2, submit_parts(qwen2, clips, question=question))
    turns_events, turns = follow(
        qwen2, submit_parts(qwen2, clips, question=question, history=history)
    )
    for record in (one, two, turns):
        assert record["status"] == "succeeded", record
    assert two["transcript_windows"] == 2
    # The second part's segment starts where the first part ends.
    assert [(s["start"], s["end"]) for s in two["segments"]] == [(0.0, 5.855), (5.855, 14.855)]
    prompt = [usage(e)["prompt_tokens"] for e in (one_events, two_events, turns_events)]
    assert prompt[1] - prompt[0] > CLIP_24K_AUDIO_TOKENS
    assert prompt[2] > prompt[1]
    assert turns["history"][0]["question"] == "Who is speaking?"


def test_seventy_seconds_are_transcribed_in_three_windows_cut_in_pauses(
    qwen2: Stack, shared_audio: Path, tmp_path: Path
) -> None:
    clips = [shared_audio / CLIP, shared_audio / CLIP_24K]
    path, pauses = long_speech(tmp_path / "long.wav", clips, seconds=70.0, pause=2.0)
    events, final = follow(qwen2, qwen2.submit_audio(path, task="transcribe"))
    assert final["status"] == "succeeded", final
    assert final["transcript_windows"] == 3
    segments = [(s["start"], s["end"]) for s in final["segments"]]
    assert len(segments) == 3, final["segments"]
    assert segments[0][0] == 0.0 and segments[-1][1] == 70.0
    for (_, end), (start, _) in itertools.pairwise(segments):
        assert end == start
        assert any(a <= end <= b for a, b in pauses), (end, pauses)
    assert all(end - start <= 30.0 for start, end in segments)
    # Each window's transcript streams when the model has transcribed it.
    deltas = [e for e in events if e.event == "transcript.delta"]
    assert len(deltas) >= 3
    completed = next(e.data["text"] for e in events if e.event == "transcript.completed")
    assert completed == final["transcript"]


@pytest.mark.parametrize(("rate", "channels"), [(44_100, 2), (8_000, 1)])
def test_other_sample_rates_are_resampled_for_the_model(
    qwen2: Stack, shared_audio: Path, tmp_path: Path, rate: int, channels: int
) -> None:
    path = convert(shared_audio / CLIP, tmp_path / f"clip-{rate}.wav", rate, channels)
    _, final = follow(qwen2, qwen2.submit_audio(path, task="transcribe"))
    assert final["status"] == "succeeded", final
    assert final["audio"][0]["seconds"] == pytest.approx(5.855, abs=0.002)
    # Window times come from the samples the model got: at 16 kHz they are the clip's length.
    ((start, end),) = [(s["start"], s["end"]) for s in final["segments"]]
    assert start == 0.0 and end == pytest.approx(5.855, abs=0.002)


def test_a_model_failing_mid_generation_fails_the_job(
    workdir: Path, redis_server: RedisServer, checkpoint: Path, shared_audio: Path
) -> None:
    failing = _start(
        workdir,
        redis_server.url(7),
        "qwen2-audio-failing",
        {
            "AUDIOCHAT_MODEL_PATH": str(checkpoint),
            "AUDIOCHAT_BACKEND_CLASS": "tests.fakes.qwen2_audio:FailingQwen2AudioBackend",
        },
    )
    try:
        events, final = follow(failing, failing.submit_audio(shared_audio / CLIP))
    finally:
        failing.close()
    assert [e.event for e in events][-3:] == ["error", "status", "done"]
    assert final["status"] == "failed"
    assert final["error"]["code"] == "model-error"
    assert FAILURE in final["error"]["message"]


def test_bf16_weights_take_the_float32_audio_features(
    checkpoint: Path, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU loads the checkpoint in bf16; the processor makes float32 features. The same
    load on CPU, forced to bf16, shows the backend feeds them without a dtype error."""
    import torch

    from shared.config import Settings
    from worker.audio import decode_audio
    from worker.backends import qwen2_audio
    from worker.backends.base import AnswerRequest, GenerationStats

    monkeypatch.setattr(qwen2_audio, "torch_dtype", lambda device: torch.bfloat16)
    backend = qwen2_audio.Qwen2AudioBackend.load(
        Settings(model="qwen2-audio", model_path=str(checkpoint), device="cpu")
    )
    assert backend.model.dtype == torch.bfloat16
    audio = decode_audio(shared_audio / CLIP)
    request = AnswerRequest(
        question="what is said?",
        audios=[audio],
        transcript=None,
        history=[],
        max_new_tokens=4,
        temperature=0.0,
    )
    stats = [p for p in backend.answer(request) if isinstance(p, GenerationStats)]
    assert stats[-1].completion_tokens == 4
    assert stats[-1].prompt_tokens > CLIP_AUDIO_TOKENS  # the audio reached the model
