"""Faults in a worker running several stages at once: a kill takes down every stage it ran, and
every one of them runs again; a stage past its hard limit fails its own job and no other."""

from __future__ import annotations

import signal
import time
from datetime import datetime

from shared.workers import WorkerRegistry
from testbed.processes import wait_for
from tests.faults.conftest import FaultStack


def test_sigkill_mid_batch_runs_every_stage_of_the_batch_again(supervised: FaultStack) -> None:
    stack = supervised.stack
    jobs = [stack.submit_text("slow:60") for _ in range(4)]
    registry = WorkerRegistry(supervised.redis_server.client())

    def all_four_running() -> bool:
        (worker,) = registry.live_workers()
        return set(worker.current_jobs) == {job["id"] for job in jobs}

    wait_for(all_four_running, 30, "the heartbeat to name all four jobs")
    for job in jobs:
        key = f"audiochat:job:{job['id']}:events"
        wait_for(lambda key=key: stack.redis().xlen(key) > 5, 30, "some tokens")
    supervised.worker.stop(signal.SIGKILL)
    finals = [supervised.final(job["id"], timeout=120) for job in jobs]
    for final in finals:
        assert final["status"] == "succeeded", final
        assert final["answer"].split() == [f"s{i}" for i in range(60)]
        assert final["answer_attempts"] == 2


def test_the_hard_limit_fails_only_the_stage_that_ran_over(supervised: FaultStack) -> None:
    stack = supervised.stack
    hung = stack.submit_text("hang:60")
    wait_for(lambda: stack.job(hung["id"])["status"] == "answering", 30, "the hung stage")
    # 140 tokens take 7 s, started 4 s in: this stage is mid-answer when the hung one passes
    # its hard limit (10 s), and done before the wedged worker gives up (5 s after that).
    time.sleep(4)
    busy = stack.submit_text("slow:140")
    hung_final = supervised.final(hung["id"])
    busy_final = supervised.final(busy["id"], timeout=120)
    assert hung_final["status"] == "failed" and hung_final["error"]["code"] == "timeout"
    assert busy_final["status"] == "succeeded", busy_final
    assert busy_final["error"] is None
    assert busy_final["answer"].split() == [f"s{i}" for i in range(140)]
    # They overlapped: the busy stage was running when the hung one was failed.
    started = datetime.fromisoformat(busy_final["started_at"])
    assert started < datetime.fromisoformat(hung_final["finished_at"])
