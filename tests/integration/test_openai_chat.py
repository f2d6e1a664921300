"""`POST /v1/chat/completions` through the official OpenAI client, against a real gateway,
Redis, S3 server and Celery workers; raw SSE checks read the stream as `curl -N` would."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from testbed.processes import wait_for
from tests.support.stack import Stack

ECHO_TRANSCRIPT = "this is the echo backend's transcript"


def _client(stack: Stack) -> OpenAI:
    # No retries: a 5xx must surface as the exception the SDK raises, not be tried again.
    return OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture
def client(stack: Stack) -> Iterator[OpenAI]:
    with _client(stack) as c:
        yield c


@pytest.fixture
def fake_client(fake_stack: Stack) -> Iterator[OpenAI]:
    with _client(fake_stack) as c:
        yield c


def _wav_part(shared_audio: Path) -> dict[str, Any]:
    data = base64.b64encode((shared_audio / "1089_134686_000007_000004.wav").read_bytes())
    return {"type": "input_audio", "input_audio": {"data": data.decode(), "format": "wav"}}


def _raw_sse(stack: Stack, body: dict[str, Any]) -> list[str]:
    """The `data:` payloads of a streamed chat completion, split the way a naive client splits
    OpenAI's stream: events end with a blank line, lines with LF."""
    with httpx.stream(
        "POST", f"{stack.url}/v1/chat/completions", json=body, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert "\r" not in raw and raw.endswith("data: [DONE]\n\n")
    events = [block for block in raw.split("\n\n") if block and not block.startswith(":")]
    assert all(block.startswith("data: ") and "\n" not in block for block in events), events
    return [block[len("data: ") :] for block in events]


def test_text_question_answers_like_openai_and_runs_as_a_job(stack: Stack, client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "what is two plus two?"}]
    )
    assert completion.object == "chat.completion"
    assert completion.model == "echo"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "You asked: what is two plus two?"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 3
    extra = completion.model_extra or {}
    assert extra["transcript"] is None
    job = stack.job(extra["job_id"])
    assert completion.id == f"chatcmpl-{job['id']}"
    assert job["status"] == "succeeded" and job["answer"] == choice.message.content


def test_streamed_answer_starts_with_the_role_and_ends_with_the_reason(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "stream me"}],
            stream=True,
        )
    )
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You asked: stream me"
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_include_usage_adds_a_usage_chunk_with_no_choices(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": "usage please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-2].choices[0].finish_reason == "stop" and chunks[-2].usage is None
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 3


def test_raw_stream_ends_with_done(stack: Stack) -> None:
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "raw"}]}
    payloads = _raw_sse(stack, body)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


def test_earlier_turns_are_the_jobs_history(fake_stack: Stack, fake_client: OpenAI) -> None:
    completion = fake_client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]},
        ],
    )
    assert completion.choices[0].message.content == "echo after 1 turns: second question"
    job = fake_stack.job((completion.model_extra or {})["job_id"])
    assert job["history"] == [
        {"question": "first question", "answer": "first answer", "upload_id": None}
    ]


def test_input_audio_is_transcribed_and_the_transcript_returned(
    stack: Stack, client: OpenAI, shared_audio: Path
) -> None:
    completion = client.chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": [_wav_part(shared_audio)]}],
    )
    assert completion.choices[0].message.content == f"You asked: {ECHO_TRANSCRIPT}"
    extra = completion.model_extra or {}
    assert extra["transcript"] == ECHO_TRANSCRIPT
    job = stack.job(extra["job_id"])
    assert job["transcript"] == ECHO_TRANSCRIPT
    assert job["audio"][0]["seconds"] == pytest.approx(9.0, abs=0.01)


def test_input_audio_with_a_question_streams_the_transcript_too(
    fake_client: OpenAI, shared_audio: Path
) -> None:
    chunks = list(
        fake_client.chat.completions.create(
            model="echo",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is said?"},
                        _wav_part(shared_audio),
                    ],
                }
            ],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo with 1 audio part: what is said?"
    transcripts = [(c.model_extra or {}).get("transcript") for c in chunks]
    assert [t for t in transcripts if t] == ["heard 9.0 seconds"]


def test_voice_message_after_upload_is_transcribed_then_answered(
    stack: Stack, client: OpenAI, shared_audio: Path
) -> None:
    path = shared_audio / "1272-128104-0000.flac"
    with path.open("rb") as handle:
        uploaded = stack.http.post(
            "/upload", data={"clientid": "client-7"}, files={"file": (path.name, handle)}
        )
    assert uploaded.status_code == 200, uploaded.text
    upload_id = uploaded.json()["id"]
    completion = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": f"voice:{upload_id}"}]
    )
    extra = completion.model_extra or {}
    assert extra["transcript"] == ECHO_TRANSCRIPT
    assert completion.choices[0].message.content == f"You asked: {ECHO_TRANSCRIPT}"
    job = stack.job(extra["job_id"])
    # The job uses the stored recording in place: no copy under the job's own keys.
    assert [part["key"] for part in job["audio"]] == [f"uploads/{upload_id}/audio"]
    assert job["question"] is None and job["transcript"] == ECHO_TRANSCRIPT


def test_voice_turn_in_history_carries_its_recording_and_transcript(
    fake_stack: Stack, fake_client: OpenAI, shared_audio: Path
) -> None:
    path = shared_audio / "1089_134686_000007_000004.wav"
    with path.open("rb") as handle:
        upload_id = fake_stack.http.post("/upload", files={"file": (path.name, handle)}).json()[
            "id"
        ]
    first = fake_client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": f"voice:{upload_id}"}]
    )
    assert (first.model_extra or {})["transcript"] == "heard 9.0 seconds"
    answer = first.choices[0].message.content or ""
    second = fake_client.chat.completions.create(
        model="echo",
        messages=[
            {"role": "user", "content": f"voice:{upload_id}"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": "and then?"},
        ],
    )
    assert second.choices[0].message.content == "echo after 1 turns: and then?"
    job = fake_stack.job((second.model_extra or {})["job_id"])
    assert job["history"] == [
        {"question": "heard 9.0 seconds", "answer": answer, "upload_id": upload_id}
    ]


def test_unknown_model_is_openais_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
    assert caught.value.status_code == 404
    assert caught.value.code == "unknown-model"
    assert caught.value.type == "invalid_request_error"
    assert caught.value.param == "model"


def test_model_without_a_worker_is_a_503(client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="qwen2-audio", messages=[{"role": "user", "content": "hello"}]
        )
    assert caught.value.status_code == 503
    assert caught.value.code == "model-unavailable"


def test_native_api_keeps_problem_documents(stack: Stack) -> None:
    response = stack.http.post("/v1/jobs", json={"question": "hi", "model": "gpt-4o"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unknown-model"


def test_unknown_voice_upload_is_a_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "voice:" + "0" * 32}]
        )
    assert caught.value.code == "upload-not-found"


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([{"role": "tool", "content": "x", "tool_call_id": "1"}], "invalid-request"),
        ([{"role": "assistant", "content": "nothing to answer"}], "missing-input"),
        (
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "!!", "format": "wav"}}
                    ],
                }
            ],
            "invalid-audio",
        ),
    ],
)
def test_bad_requests_are_openais_400(
    client: OpenAI, messages: list[dict[str, Any]], code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo", messages=messages)
    assert caught.value.code == code
    body = caught.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "code", "param"}


def test_audio_that_is_not_audio_is_refused_and_leaves_no_job(stack: Stack, client: OpenAI) -> None:
    before = {job["id"] for job in stack.http.get("/v1/jobs?limit=200").json()}
    part = {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(b"hello" * 100).decode(), "format": "mp3"},
    }
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="echo",
            messages=[{"role": "user", "content": [part]}],
        )
    assert caught.value.status_code == 415
    assert caught.value.code == "unsupported-media-type"
    assert {job["id"] for job in stack.http.get("/v1/jobs?limit=200").json()} == before


def test_failed_job_is_an_openai_error_streamed_or_not(
    fake_stack: Stack, fake_client: OpenAI
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        fake_client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "fail:2"}]
        )
    assert caught.value.status_code == 500 and caught.value.code == "model-error"

    stream = fake_client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "fail:2"}], stream=True
    )
    with pytest.raises(openai.APIError) as streamed:
        for _ in stream:
            pass
    assert (streamed.value.body or {})["code"] == "model-error"

    payloads = _raw_sse(
        fake_stack,
        {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "fail:1"}]},
    )
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["error"]["code"] == "model-error"


def test_waiting_request_ends_when_the_client_goes_away(fake_stack: Stack) -> None:
    log = fake_stack.gateway.process.log_path
    gone_before = log.read_text().count("the client went away")
    body = {"model": "echo", "messages": [{"role": "user", "content": "slow:60"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{fake_stack.url}/v1/chat/completions", json=body, timeout=0.5)
    wait_for(
        lambda: log.read_text().count("the client went away") > gone_before,
        30,
        "the gateway to notice the client left",
    )
    # The job itself goes on to the end.
    job = next(j for j in fake_stack.http.get("/v1/jobs").json() if j["question"] == "slow:60")
    assert fake_stack.run(job)["status"] == "succeeded"
