"""Stage behaviour seen through the API, with a scripted backend in a real worker."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.stack import Stack


def test_model_failure_fails_the_job_with_a_code(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("fail:3")
    events = fake_stack.events(job["id"])
    names = [e.event for e in events]
    assert names[-3:] == ["error", "status", "done"]
    assert events[-3].data["code"] == "model-error"
    assert "scripted failure" in events[-3].data["message"]
    final = fake_stack.job(job["id"])
    assert final["status"] == "failed"
    assert final["error"]["code"] == "model-error"
    assert final["finished_at"] is not None


def test_deltas_are_coalesced_and_add_up_to_the_answer(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("tokens:2000", max_new_tokens=2048)
    events = fake_stack.events(job["id"])
    deltas = [e.data["text"] for e in events if e.event == "answer.delta"]
    completed = next(e.data for e in events if e.event == "answer.completed")
    assert "".join(deltas).strip() == completed["text"]
    assert completed["text"].split() == [f"t{i}" for i in range(2000)]
    # 2000 tokens produced in well under a second must not become 2000 events.
    assert len(deltas) < 200
    assert completed["completion_tokens"] == 2000


def test_audio_and_question_reach_the_answer_stage_together(
    fake_stack: Stack, shared_audio: Path
) -> None:
    job = fake_stack.submit_audio(shared_audio / "1272-128104-0000.flac", question="who speaks?")
    final = fake_stack.run(job)
    assert final["transcript"] == "heard 5.9 seconds"
    # The scripted backend hears audio, so the answer stage was handed the decoded clip.
    assert final["answer"] == "echo with 1 audio part: who speaks?"


def test_resampled_wav_reaches_the_model_at_16_khz(fake_stack: Stack, shared_audio: Path) -> None:
    # A 24 kHz WAV of 9.0 s: decoded to 16 kHz mono the backend sees exactly 9.0 s of samples.
    job = fake_stack.submit_audio(shared_audio / "1089_134686_000007_000004.wav")
    final = fake_stack.run(job)
    assert final["transcript"] == "heard 9.0 seconds"


def test_several_audio_parts_and_history_reach_the_model(
    fake_stack: Stack, shared_audio: Path
) -> None:
    clips = [shared_audio / "1272-128104-0000.flac", shared_audio / "1089_134686_000007_000004.wav"]
    history = [{"question": "hi", "answer": "hello"}, {"question": "and?", "answer": "so"}]
    with clips[0].open("rb") as first, clips[1].open("rb") as second:
        response = fake_stack.http.post(
            "/v1/jobs",
            data={"question": "compare them", "history": json.dumps(history)},
            files=[("audio", ("a.flac", first)), ("audio", ("b.wav", second))],
        )
    assert response.status_code == 202, response.text
    job = response.json()
    assert [part["key"] for part in job["audio"]] == [
        f"jobs/{job['id']}/input",
        f"jobs/{job['id']}/input-1",
    ]
    final = fake_stack.run(job)
    assert final["transcript"] == "heard 5.9 seconds\nheard 9.0 seconds"
    assert final["answer"] == "echo with 2 audio parts after 2 turns: compare them"
    assert final["history"] == [{**turn, "upload_id": None} for turn in history]


def test_history_that_is_not_json_is_a_422_naming_the_field(fake_stack: Stack) -> None:
    response = fake_stack.http.post(
        "/v1/jobs", files={"question": (None, "q"), "history": (None, "[{oops")}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "history"


def test_transcribe_only_job_keeps_timed_segments(fake_stack: Stack, shared_audio: Path) -> None:
    clips = [shared_audio / "1272-128104-0000.flac", shared_audio / "1089_134686_000007_000004.wav"]
    with clips[0].open("rb") as first, clips[1].open("rb") as second:
        response = fake_stack.http.post(
            "/v1/jobs",
            data={"task": "transcribe"},
            files=[("audio", ("a.flac", first)), ("audio", ("b.wav", second))],
        )
    assert response.status_code == 202, response.text
    events = fake_stack.events(response.json()["id"])
    assert "answer.delta" not in [e.event for e in events]
    final = fake_stack.job(response.json()["id"])
    assert final["status"] == "succeeded" and final["answer"] is None
    # The second clip's segments start where the first clip (5.855 s) ends.
    assert [(s["start"], s["end"]) for s in final["segments"]] == [
        (0.0, 2.928),
        (2.928, 5.855),
        (5.855, 10.355),
        (10.355, 14.855),
    ]
