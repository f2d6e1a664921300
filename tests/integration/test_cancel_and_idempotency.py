"""Cancel a queued or running job; submit the same request twice with an Idempotency-Key."""

from __future__ import annotations

from pathlib import Path

from shared.redis_keys import JOB_INDEX_KEY, job_events_key
from testbed.processes import wait_for
from tests.support.stack import Stack


def test_cancel_a_running_job_stops_it_between_tokens(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("slow:200")  # 10 s of tokens if nobody stops it
    wait_for(lambda: fake_stack.redis().xlen(job_events_key(job["id"])) > 5, 30, "some tokens")
    response = fake_stack.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    events = fake_stack.events(job["id"])
    assert [e.event for e in events][-2:] == ["status", "done"]
    assert events[-1].data == {"status": "canceled"}
    # The worker is free again once the stage noticed; by then it had streamed only part.
    assert fake_stack.run(fake_stack.submit_text("next"))["status"] == "succeeded"
    streamed = "".join(
        e.data["text"] for e in fake_stack.events(job["id"]) if e.event == "answer.delta"
    )
    assert 0 < len(streamed.split()) < 200
    # The stage streamed on for up to 0.2 s after the cancel; none of that follows `done`.
    log = fake_stack.redis().xrange(job_events_key(job["id"]))
    names = [fields[b"event"].decode() for _, fields in log]
    assert names.count("done") == 1 and names[-1] == "done", names
    final = fake_stack.job(job["id"])
    assert final["status"] == "canceled" and final["answer"] is None


def test_cancel_a_queued_job_takes_it_off_the_queue(fake_stack: Stack) -> None:
    busy = fake_stack.submit_text("slow:40")
    wait_for(lambda: fake_stack.job(busy["id"])["status"] == "answering", 30, "the first job")
    queued = fake_stack.submit_text("waiting in line")
    assert fake_stack.redis().llen("model.echo") == 1
    assert fake_stack.http.post(f"/v1/jobs/{queued['id']}/cancel").status_code == 200
    assert fake_stack.redis().llen("model.echo") == 0
    names = [e.event for e in fake_stack.events(queued["id"])]
    assert names == ["status", "status", "done"]
    assert fake_stack.run(busy)["status"] == "succeeded"
    assert fake_stack.job(queued["id"])["status"] == "canceled"


def test_cancel_a_finished_job_is_409(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("done soon")
    fake_stack.run(job)
    response = fake_stack.http.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 409
    assert response.json()["code"] == "job-finished"


def test_same_idempotency_key_and_body_give_the_same_job(fake_stack: Stack) -> None:
    r = fake_stack.redis()
    before = r.zcard(JOB_INDEX_KEY)
    headers = {"Idempotency-Key": "order-1234"}
    first = fake_stack.http.post("/v1/jobs", json={"question": "once"}, headers=headers)
    again = fake_stack.http.post("/v1/jobs", json={"question": "once"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert r.zcard(JOB_INDEX_KEY) == before + 1
    other = fake_stack.http.post("/v1/jobs", json={"question": "twice"}, headers=headers)
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency-key-reused"


def test_idempotency_key_compares_audio_bytes_not_multipart_encoding(
    fake_stack: Stack, shared_audio: Path
) -> None:
    ids = []
    for clip in ("1272-128104-0000.flac", "1272-128104-0000.flac", "1089_134686_000007_000004.wav"):
        with (shared_audio / clip).open("rb") as handle:
            response = fake_stack.http.post(
                "/v1/jobs",
                files={"audio": ("a", handle)},
                headers={"Idempotency-Key": "upload-77"},
            )
        ids.append((response.status_code, response.json().get("id")))
    assert ids[0][0] == ids[1][0] == 202 and ids[0][1] == ids[1][1]
    assert ids[2][0] == 409
