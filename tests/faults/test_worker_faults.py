"""Workers that die, hang or crash every time: each job still ends, none is lost or stuck."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from testbed.processes import wait_for
from tests.faults.conftest import FaultStack


def test_sigkill_mid_stage_runs_the_stage_again_and_the_job_finishes(
    supervised: FaultStack,
) -> None:
    stack = supervised.stack
    job = stack.submit_text("slow:60")
    seen: list[str] = []
    follower = threading.Thread(
        target=lambda: seen.extend(e.event for e in stack.events(job["id"], timeout=90))
    )
    follower.start()
    # Kill the worker process while it streams the answer.
    wait_for(lambda: stack.job(job["id"])["status"] == "answering", 30, "the answer stage")
    wait_for(lambda: stack.redis().xlen(f"audiochat:job:{job['id']}:events") > 5, 30, "some tokens")
    supervised.worker.stop(signal.SIGKILL)
    final = supervised.final(job["id"])
    follower.join(timeout=90)
    assert final["status"] == "succeeded", final
    assert final["answer"].split() == [f"s{i}" for i in range(60)]
    assert final["answer_attempts"] == 2
    assert seen[-1] == "done" and seen.count("done") == 1
    retried = [e for e in stack.events(job["id"]) if e.event == "status" and "attempt" in e.data]
    assert [e.data for e in retried] == [{"status": "answering", "attempt": 2}]


def test_a_job_that_kills_its_worker_every_time_fails_with_worker_lost(
    supervised: FaultStack,
) -> None:
    job = supervised.stack.submit_text("crash:2")
    final = supervised.final(job["id"], timeout=120)
    assert final["status"] == "failed"
    assert final["error"]["code"] == "worker-lost"
    assert final["answer_attempts"] == 3
    # The worker comes back and serves the next job.
    supervised.wait_worker_ready()
    after = supervised.final(supervised.stack.submit_text("hello again")["id"])
    assert after["status"] == "succeeded"


def test_a_crash_once_job_is_redelivered_and_succeeds(
    supervised: FaultStack, tmp_path: Path
) -> None:
    job = supervised.stack.submit_text(f"crash-once:{tmp_path / 'crashed'}")
    final = supervised.final(job["id"])
    assert final["status"] == "succeeded" and final["answer"] == "survived"
    assert final["answer_attempts"] == 2


def test_a_stage_over_its_soft_limit_fails_with_timeout(faults: FaultStack) -> None:
    # 240 tokens 50 ms apart take 12 s; the soft limit is 8 s.
    final = faults.final(faults.stack.submit_text("slow:240")["id"])
    assert final["status"] == "failed" and final["error"]["code"] == "timeout"
    assert faults.worker.process.alive()


def test_a_hung_stage_is_failed_at_the_hard_limit_and_the_worker_replaced(
    supervised: FaultStack,
) -> None:
    pid = supervised.worker.process.pid
    final = supervised.final(supervised.stack.submit_text("hang:60")["id"])
    assert final["status"] == "failed" and final["error"]["code"] == "timeout"
    wait_for(lambda: supervised.worker.process.pid != pid, 60, "a new worker process")
    supervised.wait_worker_ready()
    after = supervised.final(supervised.stack.submit_text("still there?")["id"])
    assert after["status"] == "succeeded"
