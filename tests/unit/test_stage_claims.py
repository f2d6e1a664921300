"""A stage's claim on a real Redis: a worker deletes only the claim it made, so a delivery it
skips, or a stage that outlived the reaper's decision, never frees a job another worker runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.config import Settings
from shared.events import EventPublisher
from shared.jobs import JobRepository
from shared.redis_keys import RUNNING_JOBS_KEY, worker_key
from shared.running import RunningJobs
from shared.schemas import JobRead, JobStatus
from shared.storage import open_store
from testbed.processes import RedisServer
from tests.support.jobs import typed_job
from worker.backends.echo import EchoBackend
from worker.pipeline import JobPipeline

DB = 11
RETENTION = 600


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url(DB))
    connection.flushdb()
    yield connection
    connection.close()


def _pipeline(client: redis.Redis, tmp_path: Path, worker_name: str) -> JobPipeline:
    settings = Settings(redis_url="redis://unused", storage_url=f"file://{tmp_path / 'objects'}")
    return JobPipeline(
        backend=EchoBackend(),
        jobs=JobRepository(client, RETENTION),
        events=EventPublisher(client, RETENTION),
        store=open_store(settings),
        settings=settings,
        running=RunningJobs(client),
        worker_name=worker_name,
    )


def _typed_job(client: redis.Redis) -> JobRead:
    job = typed_job(question="what is two and two?")
    JobRepository(client, RETENTION).create(job)
    return job


def _holder(client: redis.Redis, job_id: str) -> str | None:
    held = client.hget(RUNNING_JOBS_KEY, job_id)
    return None if held is None else str(json.loads(held)["worker"])


def test_release_deletes_only_the_callers_own_claim(client: redis.Redis) -> None:
    running = RunningJobs(client)
    job = _typed_job(client)
    assert running.claim(job.id, "echo-1@a", "answer") == 1
    assert not running.release(job.id, "echo-2@b", "answer")
    assert not running.release(job.id, "echo-1@a", "transcribe")
    assert _holder(client, job.id) == "echo-1@a"
    assert running.release(job.id, "echo-1@a", "answer")
    assert _holder(client, job.id) is None


def test_a_delivery_skipped_because_another_worker_runs_the_stage_leaves_its_claim(
    client: redis.Redis, tmp_path: Path
) -> None:
    job = _typed_job(client)
    # Worker A runs the answer stage: its claim is made and its heartbeat is alive.
    client.set(worker_key("echo-1@a"), json.dumps({"name": "echo-1@a"}))
    assert RunningJobs(client).claim(job.id, "echo-1@a", "answer") == 1
    # The same task reaches worker B too (a redelivery): B must skip it and leave A's claim.
    _pipeline(client, tmp_path, "echo-2@b").answer(job.id)
    assert _holder(client, job.id) == "echo-1@a"
    assert JobRepository(client, RETENTION).status(job.id) is JobStatus.QUEUED


def test_a_stage_that_outlived_its_claim_does_not_free_the_worker_now_running_it(
    client: redis.Redis, tmp_path: Path
) -> None:
    job = _typed_job(client)
    running = RunningJobs(client)
    slow = _pipeline(client, tmp_path, "echo-1@a")

    def answer_then_lose_the_claim(job_id: str) -> None:
        slow._answer(job_id)  # claims the stage and answers
        # Before A's stage ends, the reaper finds its claim stale (A's heartbeat is gone) and
        # B claims the job again.
        (stale,) = running.stale(grace_seconds=0)
        assert running.release_stale(stale)
        client.set(worker_key("echo-2@b"), json.dumps({"name": "echo-2@b"}))
        assert running.claim(job_id, "echo-2@b", "answer") == 2

    slow._guarded(job.id, "answer", answer_then_lose_the_claim)
    assert _holder(client, job.id) == "echo-2@b"


def test_a_finished_stage_frees_its_claim(client: redis.Redis, tmp_path: Path) -> None:
    job = _typed_job(client)
    _pipeline(client, tmp_path, "echo-1@a").answer(job.id)
    record = JobRepository(client, RETENTION).get(job.id)
    assert record is not None and record.status is JobStatus.SUCCEEDED
    assert record.answer == "You asked: what is two and two?"
    assert _holder(client, job.id) is None
