"""Where a job's event stream starts and ends: `Last-Event-ID` at, before and past the end."""

from __future__ import annotations

import httpx

from shared.redis_keys import job_events_key
from testbed.processes import wait_for
from tests.support.stack import Stack


def _ended_job(stack: Stack) -> tuple[str, int]:
    """A job that has ended, and the id of its `done` event."""
    job = stack.submit_text("edges")
    events = stack.events(job["id"])
    assert events[-1].event == "done"
    return job["id"], events[-1].id


def test_reconnecting_after_done_gets_204_so_event_source_stops(fake_stack: Stack) -> None:
    job_id, done = _ended_job(fake_stack)
    url = f"/v1/jobs/{job_id}/events"
    # What an EventSource sends when the stream it read to `done` closes: a bounded wait, so
    # a stream that never ends fails the test instead of hanging it.
    for response in (
        fake_stack.http.get(url, headers={"Last-Event-ID": str(done)}, timeout=10),
        fake_stack.http.get(url, params={"last_event_id": done}, timeout=10),
    ):
        assert response.status_code == 204, response.text
        assert response.content == b""


def test_reconnecting_just_before_done_gets_done_only(fake_stack: Stack) -> None:
    job_id, done = _ended_job(fake_stack)
    events = fake_stack.events(job_id, last_event_id=done - 1, timeout=10)
    assert [(e.id, e.event) for e in events] == [(done, "done")]


def test_a_last_event_id_past_the_log_is_refused_with_a_problem(fake_stack: Stack) -> None:
    running = fake_stack.submit_text("slow:40")
    wait_for(lambda: fake_stack.redis().xlen(job_events_key(running["id"])) > 2, 30, "some events")
    ended, done = _ended_job(fake_stack)
    cases = [(ended, done + 1), (running["id"], 10_000), (ended, 10**30), (running["id"], 2**64)]
    for job_id, last in cases:
        response = fake_stack.http.get(
            f"/v1/jobs/{job_id}/events",
            headers={"Last-Event-ID": str(last)},
            timeout=httpx.Timeout(10),
        )
        assert response.status_code == 422, (last, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "invalid-request"
        assert problem["errors"][0]["field"] == "Last-Event-ID"
    assert fake_stack.run(running)["status"] == "succeeded"
