"""When a job expires, its record, event log and audio go too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.events import job_events_key, job_key
from tests.conftest import start_stack
from tests.support.processes import RedisServer, wait_for
from tests.support.stack import Stack


@pytest.fixture(scope="module")
def short_lived(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'short-lived-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_JOB_RETENTION_SECONDS": "3",
        "AUDIOCHAT_MAINTENANCE_INTERVAL_SECONDS": "0.5",
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
