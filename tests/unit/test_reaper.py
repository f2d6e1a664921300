"""The reaper in process, on a real Redis: it never leaves a job with neither a claim nor a
task, and never deletes a claim made after it looked."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.deps import Services
from api.main import _open_services
from api.maintenance import reap
from api.queue import JobQueue
from shared.config import Settings
from shared.redis_keys import RUNNING_JOBS_KEY
from shared.running import RunningJobs
from shared.schemas import JobRead, JobStatus
from shared.tasks import queue_for_model
from testbed.processes import RedisServer, free_port
from tests.support.jobs import typed_job

DB = 10


@pytest.fixture
def services(redis_server: RedisServer, tmp_path: Path) -> Iterator[Services]:
    settings = Settings(
        redis_url=redis_server.url(DB),
        storage_url=f"file://{tmp_path / 'objects'}",
        worker_heartbeat_ttl_seconds=3,
    )
    opened = _open_services(settings)
    opened.redis.flushdb()
    yield opened
    opened.queue.close()
    opened.redis.close()


def _answering_job(services: Services) -> JobRead:
    job = typed_job(JobStatus.ANSWERING)
    services.jobs.create(job)
    return job


def test_a_claim_made_after_the_staleness_check_is_not_deleted(services: Services) -> None:
    running = RunningJobs(services.redis)
    job = _answering_job(services)
    assert running.claim(job.id, "echo-1@dead", "answer") == 1  # no heartbeat: a dead worker
    (stale,) = running.stale(grace_seconds=0)
    # Meanwhile the stage starts again on a live worker (the dead one's claim is taken over).
    assert running.claim(job.id, "echo-2@alive", "answer") == 2
    assert not running.release_stale(stale)
    held = services.redis.hget(RUNNING_JOBS_KEY, job.id)
    assert held is not None and b"echo-2@alive" in held


def test_the_claim_stays_until_the_stage_is_requeued(services: Services) -> None:
    running = RunningJobs(services.redis)
    job = _answering_job(services)
    running.claim(job.id, "echo-1@dead", "answer")
    # The broker cannot be reached when the reaper sends the task again.
    unreachable = services.settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    offline = dataclasses.replace(services, queue=JobQueue(unreachable))
    try:
        assert reap(offline, running) == 0
    finally:
        offline.queue.close()
    assert services.redis.hexists(RUNNING_JOBS_KEY, job.id), "the job has no claim and no task"
    assert services.redis.llen(queue_for_model("echo")) == 0
    # The next pass, with the broker back, requeues it and only then lets the claim go.
    assert reap(services, running) == 1
    assert not services.redis.hexists(RUNNING_JOBS_KEY, job.id)
    assert services.redis.llen(queue_for_model("echo")) == 1
    record = services.jobs.get(job.id)
    assert record is not None and record.status is JobStatus.ANSWERING
