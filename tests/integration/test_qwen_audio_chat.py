"""The qwen-audio-chat backend in a real worker running in its own pinned environment.

The checkpoint's remote code is the stand-in in tests/fakes/qwen_audio_chat, loaded with
`trust_remote_code=True` from a local folder under transformers < 4.54. Its answers are
scripted from what reached it (how many audio inputs, how many earlier turns, each audio's
length as a timestamp token), so these tests can compare text exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from tests.support import tiny_qwen_audio_chat
from tests.support.audio_files import long_speech
from tests.support.processes import Gateway, RedisServer, Worker
from tests.support.stack import Stack
from worker.backends.qwen_audio_chat import (
    IncompatibleTransformers,
    QwenAudioChatBackend,
    check_transformers,
)

CLIP = "1272-128104-0000.flac"  # 5.855 s
CLIP_24K = "1089_134686_000007_000004.wav"  # 9.0 s at 24 kHz
TIMEOUT = 120


@pytest.mark.parametrize("version", ["4.32.0", "4.45.2", "4.53.3", "4.53.0.dev0"])
def test_transformers_in_the_working_range_is_accepted(version: str) -> None:
    check_transformers(version)


@pytest.mark.parametrize("version", ["4.31.0", "4.54.0", "4.57.1", "5.0.0", "5.23.0"])
def test_transformers_outside_the_working_range_is_refused(version: str) -> None:
    with pytest.raises(IncompatibleTransformers, match=r">=4\.32,<4\.54"):
        check_transformers(version)


def test_loading_under_the_main_environment_fails_clearly(tmp_path: Path) -> None:
    # The main environment has transformers 5.x: the backend refuses before touching the folder.
    settings = Settings(model="qwen-audio-chat", model_path=str(tmp_path))
    with pytest.raises(IncompatibleTransformers, match="requirements-qwen-audio-chat"):
        QwenAudioChatBackend.load(settings)


@pytest.fixture(scope="module")
def pinned_python() -> Path:
    python = tiny_qwen_audio_chat.pinned_python()
    if not python.exists():
        pytest.fail(
            f"{python} is missing: `make qwen-audio-chat-env` builds the pinned environment "
            "(`make test` does it first)"
        )
    return python


@pytest.fixture(scope="module")
def chat(
    workdir: Path,
    redis_server: RedisServer,
    pinned_python: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root = workdir / "qwen-audio-chat"
    # Where transformers copies the checkpoint's code to import it; kept out of ~/.cache.
    modules = {"HF_MODULES_CACHE": str(root / "hf-modules"), "HF_HUB_OFFLINE": "1"}
    checkpoint = tiny_qwen_audio_chat.build(
        tmp_path_factory.mktemp("qwen-audio-chat-checkpoint"), pinned_python, modules
    )
    base = {
        "AUDIOCHAT_REDIS_URL": redis_server.url(8),
        "AUDIOCHAT_STORAGE_URL": f"file://{root / 'objects'}",
        "AUDIOCHAT_MODEL": "qwen-audio-chat",
        "AUDIOCHAT_LOG_LEVEL": "INFO",
    }
    gateway = Gateway(base, root, "gateway")
    gateway.start()
    worker = Worker(
        {**base, **modules, "AUDIOCHAT_MODEL_PATH": str(checkpoint)}, root, "worker-chat"
    )
    # The same worker command, run by the pinned environment's Python.
    worker.process.args[0] = str(pinned_python)
    try:
        worker.start()
    except BaseException:
        gateway.stop()
        raise
    running = Stack(gateway, [worker], base["AUDIOCHAT_REDIS_URL"], base, root)
    yield running
    running.close()


def run(stack: Stack, job: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    events = stack.events(job["id"], timeout=TIMEOUT)
    return events, stack.job(job["id"])


@pytest.mark.slow
def test_worker_runs_under_the_pinned_transformers(chat: Stack, pinned_python: Path) -> None:
    log = chat.workers[0].process.log_path.read_text()
    assert "qwen-audio-chat loaded from" in log
    assert "chat_stream" not in log


@pytest.mark.slow
def test_spoken_question_keeps_the_models_timestamps(chat: Stack, shared_audio: Path) -> None:
    events, final = run(chat, chat.submit_audio(shared_audio / CLIP))
    assert final["status"] == "succeeded", final
    # The audio reached the model through audio_info, and the timestamps stayed in the text.
    heard = "heard 1 audio after 0 turns: <|0.00|>clip 1<|5.86|>"
    assert final["transcript"] == heard
    assert final["answer"] == heard
    assert final["segments"] == [{"start": 0.0, "end": 5.855, "text": heard}]
    streamed = "".join(e.data["text"] for e in events if e.event == "answer.delta")
    assert streamed.strip() == final["answer"]


@pytest.mark.slow
def test_two_clips_and_history_reach_the_model(chat: Stack, shared_audio: Path) -> None:
    history = [
        {"question": "Who is speaking?", "answer": "A man."},
        {"question": "Is he calm?", "answer": "Yes."},
    ]
    clips = [shared_audio / CLIP, shared_audio / CLIP_24K]
    with clips[0].open("rb") as first, clips[1].open("rb") as second:
        response = chat.http.post(
            "/v1/jobs",
            data={"question": "Compare the two clips.", "history": json.dumps(history)},
            files=[("audio", (clips[0].name, first)), ("audio", (clips[1].name, second))],
        )
    assert response.status_code == 202, response.text
    _, final = run(chat, response.json())
    assert final["status"] == "succeeded", final
    assert final["answer"] == (
        "heard 2 audio after 2 turns: <|0.00|>clip 1<|5.86|> <|0.00|>clip 2<|9.00|>"
    )


@pytest.mark.slow
def test_typed_question_has_no_audio(chat: Stack) -> None:
    _, final = run(chat, chat.submit_text("What is the capital of France?"))
    assert final["status"] == "succeeded", final
    assert final["answer"] == "heard 0 audio after 0 turns:"


@pytest.mark.slow
def test_long_audio_is_transcribed_in_windows_and_answered_from_the_transcript(
    chat: Stack, shared_audio: Path, tmp_path: Path
) -> None:
    clips = [shared_audio / CLIP, shared_audio / CLIP_24K]
    path, _ = long_speech(tmp_path / "long.wav", clips, seconds=40.0, pause=2.0)
    _, final = run(chat, chat.submit_audio(path, question="What is it about?"))
    assert final["status"] == "succeeded", final
    assert final["transcript_windows"] == 2
    first, second = final["segments"]
    assert first["start"] == 0.0 and first["end"] == second["start"]
    assert second["end"] == 40.0
    # Each window was heard whole: its length is the timestamp the model gave.
    for segment in (first, second):
        length = segment["end"] - segment["start"]
        assert segment["text"].startswith("heard 1 audio after 0 turns: <|0.00|>clip 1<|")
        assert abs(float(segment["text"].rsplit("<|", 1)[1].rstrip("|>")) - length) < 0.05
    assert final["transcript"] == f"{first['text']} {second['text']}"
    # 40 s is more than the model hears: the answer comes from the transcript, not cut audio.
    assert final["answer"] == "heard 0 audio after 0 turns:"
