"""When a job expires, its record, event log and audio go too."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.redis_keys import job_events_key, job_key
from testbed.processes import RedisServer, wait_for
from tests.conftest import start_stack
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def short_lived(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'short-lived-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_JOB_RETENTION_SECONDS": "3",
        "AUDIOCHAT_MAINTENANCE_INTERVAL_SECONDS": "0.5",
        "AUDIOCHAT_MAX_ACTIVE_JOBS_PER_TENANT": "2",
    }
    running = start_stack(workdir / "short-lived", redis_server.url(4), env, {"worker": {}})
    yield running
    running.close()


def test_an_expired_job_leaves_no_record_log_or_audio(
    short_lived: Stack, shared_audio: Path, workdir: Path
) -> None:
    job = short_lived.submit_audio(shared_audio / "1272-128104-0000.flac")
    assert short_lived.run(job)["status"] == "succeeded"
    stored = workdir / "short-lived-objects" / "jobs" / job["id"] / "input"
    assert stored.exists()
    r = short_lived.redis()
    wait_for(
        lambda: not r.exists(job_key(job["id"]), job_events_key(job["id"])),
        30,
        "the record and log to expire",
    )
    wait_for(lambda: not stored.exists(), 30, "the audio to be deleted")
    assert not stored.with_name("input.meta.json").exists()
    assert short_lived.http.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_jobs_that_expire_without_ending_stop_counting_against_the_cap(
    short_lived: Stack,
) -> None:
    """The worker is down (frozen: its heartbeat still says it is alive), so queued jobs never
    end. A job that expired must not count as active, even while a later job keeps the
    tenant's list of active jobs alive."""
    worker = short_lived.workers[0].process
    assert worker.popen is not None
    r = short_lived.redis()
    worker.popen.send_signal(signal.SIGSTOP)
    try:
        first = short_lived.submit_text("stuck, and expires first")
        # Half the retention later (a clock, not an event, is what this waits for).
        time.sleep(1.5)
        second = short_lived.submit_text("stuck, expires later")
        refused = short_lived.http.post("/v1/jobs", json={"question": "one too many"})
        assert refused.status_code == 429
        assert refused.json()["code"] == "too-many-active-jobs"
        wait_for(lambda: not r.exists(job_key(first["id"])), 30, "the first job to expire")
        assert r.exists(job_key(second["id"]))
        accepted = short_lived.http.post("/v1/jobs", json={"question": "one is active"})
        assert accepted.status_code == 202, accepted.text
    finally:
        worker.popen.send_signal(signal.SIGCONT)
    # The worker skips the expired jobs' tasks and runs the new one.
    assert short_lived.run(accepted.json())["status"] == "succeeded"
