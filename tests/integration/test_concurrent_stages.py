"""A worker that runs several stages at once: what it reserves, what its heartbeat says, how a
cancel stops one stage and not the others, and that its logs and metrics keep jobs apart.

The worker runs the scripted fake backend (tests/fakes/backends.py) with four threads, against
the real Redis and the real gateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.tasks import queue_for_model
from shared.workers import WorkerRegistry
from testbed.processes import RedisServer, free_port, wait_for
from tests.conftest import start_stack
from tests.support.stack import Stack

CONCURRENCY = 4


@pytest.fixture(scope="module")
def four(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'four-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_WORKER_HEARTBEAT_TTL_SECONDS": "3",
    }
    worker = {
        "AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:ScriptedBackend",
        "AUDIOCHAT_WORKER_CONCURRENCY": str(CONCURRENCY),
        "AUDIOCHAT_WORKER_METRICS_PORT": str(free_port()),
    }
    running = start_stack(workdir / "four", redis_server.url(10), env, {"worker-four": worker})
    yield running
    running.close()


def answering(stack: Stack, jobs: list[dict[str, str]]) -> list[str]:
    return [j["id"] for j in jobs if stack.job(j["id"])["status"] == "answering"]


def test_the_worker_runs_its_concurrency_and_reserves_no_more(four: Stack) -> None:
    jobs = [four.submit_text("slow:80") for _ in range(CONCURRENCY + 2)]
    wait_for(lambda: len(answering(four, jobs)) == CONCURRENCY, 30, "four stages running")
    running = answering(four, jobs)
    # The other two wait in the broker's queue, where any idle worker could take them.
    queue = queue_for_model("echo")
    assert four.redis().llen(queue) == 2

    def heartbeat_names_them() -> bool:
        (worker,) = WorkerRegistry(four.redis()).live_workers("echo")
        return worker.concurrency == CONCURRENCY and set(worker.current_jobs) == set(running)

    wait_for(heartbeat_names_them, 10, "the heartbeat to name the running jobs")
    assert four.redis().llen(queue) == 2
    finals = [four.run(job, timeout=60) for job in jobs]
    assert [f["status"] for f in finals] == ["succeeded"] * len(jobs)
    assert all(f["answer"].split() == [f"s{i}" for i in range(80)] for f in finals)


def test_a_cancel_stops_its_stage_and_not_the_others(four: Stack) -> None:
    jobs = [four.submit_text("slow:120") for _ in range(3)]
    wait_for(lambda: len(answering(four, jobs)) == 3, 30, "three stages running")
    canceled = jobs[0]
    assert four.http.post(f"/v1/jobs/{canceled['id']}/cancel").status_code == 200
    log = four.workers[0].process.log_path
    wait_for(
        lambda: f"canceled; answer stopped job_id={canceled['id']}" in log.read_text(),
        5,
        "the canceled stage to stop",
    )
    deltas = four.redis().xlen(f"audiochat:job:{canceled['id']}:events")
    others = [four.run(job, timeout=60) for job in jobs[1:]]
    assert [o["answer"].split() for o in others] == [[f"s{i}" for i in range(120)]] * 2
    # Nothing was written for the canceled job while the others went on for seconds.
    assert four.redis().xlen(f"audiochat:job:{canceled['id']}:events") == deltas
    assert four.job(canceled["id"])["status"] == "canceled"


def test_each_log_line_and_metric_belongs_to_its_own_job(four: Stack) -> None:
    jobs = [four.submit_text(f"tokens:{10 + i}") for i in range(CONCURRENCY)]
    finals = [four.run(job) for job in jobs]
    log = four.workers[0].process.log_path.read_text()
    for job, final in zip(jobs, finals, strict=True):
        lines = [line for line in log.splitlines() if f"job_id={job['id']}" in line]
        assert any("answered in" in line for line in lines), job["id"]
        assert len(final["answer"].split()) == int(final["question"].split(":")[1])
    port = four.workers[0].env["AUDIOCHAT_WORKER_METRICS_PORT"]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    counts = re.findall(
        r'audiochat_worker_stage_duration_seconds_count\{model="echo",stage="answer"\} (\S+)',
        metrics,
    )
    # Every answer stage this worker ran was measured once, however they overlapped.
    answered = len(re.findall(r"answered in", log))
    assert counts and float(counts[0]) == answered
