"""The `/v1/jobs` API over HTTP against a real gateway, Redis, S3 server and Celery worker."""

from __future__ import annotations

from pathlib import Path

from shared.redis_keys import JOB_INDEX_KEY
from tests.support.stack import Stack


def test_text_job_runs_the_answer_stage_only(stack: Stack) -> None:
    job = stack.submit_text("what is two plus two?", model="echo")
    assert job["status"] == "queued"
    events = stack.events(job["id"])
    names = [e.event for e in events]
    assert "transcript.delta" not in names and "transcript.completed" not in names
    assert names[0] == "status" and events[0].data == {"status": "queued"}
    assert names[-2:] == ["status", "done"] and events[-1].data == {"status": "succeeded"}
    final = stack.job(job["id"])
    assert final["status"] == "succeeded"
    assert final["answer"] == "You asked: what is two plus two?"
    assert final["transcript"] is None
    assert final["durations"]["answer_seconds"] is not None
    assert final["started_at"] <= final["finished_at"]


def test_submit_answers_202_with_location(stack: Stack) -> None:
    response = stack.http.post("/v1/jobs", json={"question": "hello", "model": "echo"})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert stack.http.get(response.headers["location"]).status_code == 200


def test_audio_job_transcribes_then_answers_the_transcript(
    stack: Stack, shared_audio: Path
) -> None:
    job = stack.submit_audio(shared_audio / "1272-128104-0000.flac", model="echo")
    assert job["has_audio"]
    assert job["audio"] == [
        {"key": f"jobs/{job['id']}/input", "filename": "1272-128104-0000.flac", "seconds": 5.855}
    ]
    events = stack.events(job["id"])
    names = [e.event for e in events]
    statuses = [e.data["status"] for e in events if e.event == "status"]
    assert statuses == ["queued", "transcribing", "answering", "succeeded"]
    assert names.index("transcript.completed") < names.index("answer.completed")
    final = stack.job(job["id"])
    assert final["transcript"] == "this is the echo backend's transcript"
    assert final["answer"] == "You asked: this is the echo backend's transcript"
    assert final["durations"]["transcribe_seconds"] is not None


def test_event_ids_increase_by_one(stack: Stack) -> None:
    job = stack.submit_text("count me", model="echo")
    ids = [e.id for e in stack.events(job["id"])]
    assert ids == list(range(1, len(ids) + 1))


def test_late_subscriber_gets_the_whole_history(stack: Stack) -> None:
    job = stack.submit_text("late", model="echo")
    first = stack.events(job["id"])
    again = stack.events(job["id"])
    assert [(e.id, e.event, e.data) for e in again] == [(e.id, e.event, e.data) for e in first]
    assert again[0].id == 1 and again[-1].event == "done"


def test_reconnect_with_last_event_id_yields_exactly_the_later_events(stack: Stack) -> None:
    job = stack.submit_text("resume", model="echo")
    everything = stack.events(job["id"])
    cut = len(everything) // 2
    for query in (False, True):
        rest = stack.events(job["id"], last_event_id=everything[cut - 1].id, query=query)
        assert [(e.id, e.event) for e in rest] == [(e.id, e.event) for e in everything[cut:]]


def test_unknown_job_is_a_404_problem(stack: Stack) -> None:
    for path in ("/v1/jobs/0123456789abcdef0123456789abcdef", "/v1/jobs/nope/events"):
        response = stack.http.get(path)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "job-not-found" and problem["status"] == 404


def test_text_uploaded_as_audio_is_refused_and_nothing_is_queued(
    stack: Stack, tmp_path: Path
) -> None:
    fake = tmp_path / "question.wav"
    fake.write_text("this is not audio, just text pretending to be a wav file\n" * 50)
    r = stack.redis()
    jobs_before = r.zcard(JOB_INDEX_KEY)
    with fake.open("rb") as handle:
        response = stack.http.post(
            "/v1/jobs",
            files={"audio": ("question.wav", handle, "audio/wav")},
            data={"model": "echo"},
        )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "unsupported-media-type"
    assert r.zcard(JOB_INDEX_KEY) == jobs_before
    assert r.llen("model.echo") == 0


def test_neither_audio_nor_question_is_a_422_problem(stack: Stack) -> None:
    multipart = stack.http.post("/v1/jobs", files={"language": (None, "en")})
    as_json = stack.http.post("/v1/jobs", json={"model": "echo"})
    for response in (multipart, as_json):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "missing-input"


def test_bad_fields_are_422_naming_the_field(stack: Stack) -> None:
    response = stack.http.post("/v1/jobs", json={"question": "x", "temperature": 9})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["temperature"]
    response = stack.http.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid-request"


def test_unknown_model_is_refused(stack: Stack) -> None:
    response = stack.http.post("/v1/jobs", json={"question": "x", "model": "gpt-9"})
    assert response.status_code == 422 and response.json()["code"] == "unknown-model"
    assert response.json()["errors"][0]["field"] == "model"
    response = stack.http.post("/v1/jobs", json={"question": "x", "max_new_tokens": 5000})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "max_new_tokens"


def test_listing_shows_recent_jobs_newest_first(stack: Stack) -> None:
    first = stack.submit_text("one", model="echo")
    second = stack.submit_text("two", model="echo")
    listed = [job["id"] for job in stack.http.get("/v1/jobs", params={"limit": 50}).json()]
    assert listed.index(second["id"]) < listed.index(first["id"])


def test_health_and_readiness(stack: Stack) -> None:
    assert stack.http.get("/healthz").json() == {"status": "ok"}
    ready = stack.http.get("/readyz").json()
    assert ready["checks"] == {"redis": "ok", "storage": "ok", "events": "ok"}


def test_local_directory_store_end_to_end(local_stack: Stack, shared_audio: Path) -> None:
    job = local_stack.submit_audio(shared_audio / "1089_134686_000007_000004.wav")
    final = local_stack.run(job)
    assert final["status"] == "succeeded" and final["model"] == "echo"
    stored = local_stack.workdir.parent / "objects" / "jobs" / job["id"] / "input"
    assert stored.read_bytes() == (shared_audio / "1089_134686_000007_000004.wav").read_bytes()


def test_a_model_with_no_live_worker_is_refused_with_503(stack: Stack) -> None:
    response = stack.http.post("/v1/jobs", json={"question": "x", "model": "qwen2-audio"})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert response.json()["code"] == "model-unavailable"
    assert stack.redis().llen("model.qwen2-audio") == 0
