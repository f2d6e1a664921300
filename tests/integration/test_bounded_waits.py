"""Requests that wait for a job's end (chat, transcriptions) stop waiting after
`MAX_WAIT_SECONDS`: a job stuck in a queue does not hold them open until the client retries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from shared.redis_keys import JOB_INDEX_KEY
from testbed.processes import Gateway, wait_for
from tests.support.stack import Stack

MAX_WAIT = 1.5


@pytest.fixture(scope="module")
def impatient(fake_stack: Stack) -> Iterator[Gateway]:
    """A second gateway on the fake stack's Redis and store that waits at most 1.5 s."""
    env = {**fake_stack.env, "AUDIOCHAT_MAX_WAIT_SECONDS": str(MAX_WAIT)}
    gateway = Gateway(env, fake_stack.workdir, name="gateway-impatient")
    gateway.start()
    yield gateway
    gateway.stop()


def _busy_worker(fake_stack: Stack) -> dict[str, str]:
    """Occupy the stack's one worker for 3 s, so the next job waits in the queue."""
    busy = fake_stack.submit_text("slow:60")
    wait_for(lambda: fake_stack.job(busy["id"])["status"] == "answering", 30, "the busy job")
    return busy


def _data_lines(response: httpx.Response) -> list[str]:
    """The `data:` payloads of an OpenAI stream, in order."""
    return [
        line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")
    ]


def test_chat_stops_waiting_with_504_and_the_sdk_does_not_send_it_again(
    fake_stack: Stack, impatient: Gateway
) -> None:
    busy = _busy_worker(fake_stack)
    r = fake_stack.redis()
    jobs_before = r.zcard(JOB_INDEX_KEY)
    # The SDK's own retries on: it must not use them here.
    with (
        OpenAI(base_url=f"{impatient.url}/v1", api_key="unused", max_retries=2) as client,
        pytest.raises(openai.APIStatusError) as raised,
    ):
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "queued"}]
        )
    error = raised.value
    assert error.status_code == 504
    assert error.response.headers["x-should-retry"] == "false"
    body = error.response.json()["error"]
    assert body["code"] == "job-not-finished"
    assert r.zcard(JOB_INDEX_KEY) == jobs_before + 1
    # The job goes on, readable by the id the error names.
    (queued,) = [j for j in fake_stack.http.get("/v1/jobs").json() if j["question"] == "queued"]
    assert queued["id"] in body["message"]
    assert fake_stack.run(queued)["status"] == "succeeded"
    assert fake_stack.run(busy)["status"] == "succeeded"


def test_a_streamed_chat_ends_with_the_error_and_done(
    fake_stack: Stack, impatient: Gateway
) -> None:
    busy = _busy_worker(fake_stack)
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "later"}]}
    with httpx.stream(
        "POST", f"{impatient.url}/v1/chat/completions", json=body, timeout=30
    ) as response:
        assert response.status_code == 200
        payloads = _data_lines(response)
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["error"]["code"] == "job-not-finished"
    assert fake_stack.run(busy)["status"] == "succeeded"


def test_a_transcription_stops_waiting_too(
    fake_stack: Stack, impatient: Gateway, shared_audio: Path
) -> None:
    busy = _busy_worker(fake_stack)
    with (shared_audio / "1272-128104-0000.flac").open("rb") as handle:
        response = httpx.post(
            f"{impatient.url}/v1/audio/transcriptions",
            data={"model": "echo"},
            files={"file": ("q.flac", handle)},
            timeout=30,
        )
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "job-not-finished"
    assert fake_stack.run(busy)["status"] == "succeeded"


def test_a_streamed_transcription_ends_with_the_error_and_done(
    fake_stack: Stack, impatient: Gateway, shared_audio: Path
) -> None:
    busy = _busy_worker(fake_stack)
    with (
        (shared_audio / "1272-128104-0000.flac").open("rb") as handle,
        httpx.stream(
            "POST",
            f"{impatient.url}/v1/audio/transcriptions",
            data={"model": "echo", "stream": "true"},
            files={"file": ("q.flac", handle)},
            timeout=30,
        ) as response,
    ):
        assert response.status_code == 200
        payloads = _data_lines(response)
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert error["code"] == "job-not-finished"
    assert error["type"] == "server_error"  # OpenAI's type for the 504 it stands for
    assert fake_stack.run(busy)["status"] == "succeeded"
