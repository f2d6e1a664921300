"""Redis at its `maxmemory` with `noeviction` (the compose file's policy): writes are refused
loudly, nothing is evicted, and no job is lost or left half-written."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis

from shared.redis_keys import JOB_INDEX_KEY, RUNNING_JOBS_KEY, job_events_key
from testbed.processes import wait_for
from tests.faults.conftest import FaultStack

BALLAST = "test:ballast"


@contextlib.contextmanager
def _full(client: redis.Redis) -> Iterator[None]:
    """Redis over its maxmemory: 8 MB of ballast, and a limit 4 MB below what it then holds."""
    client.config_set("maxmemory-policy", "noeviction")
    for _ in range(128):
        client.rpush(BALLAST, "x" * 64 * 1024)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used - 4 * 1024 * 1024))
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("test:probe", "x")
        yield
    finally:
        client.delete(BALLAST)
        client.config_set("maxmemory", "0")


def test_a_full_redis_refuses_new_jobs_with_a_clear_problem(faults: FaultStack) -> None:
    stack = faults.stack
    r = faults.redis_server.client()
    jobs_before = r.zcard(JOB_INDEX_KEY)
    with _full(r):
        native = stack.http.post("/v1/jobs", json={"question": "no room"})
        assert native.status_code == 503, native.text
        assert native.json()["code"] == "redis-full"
        assert int(native.headers["retry-after"]) > 0
        chat = stack.http.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": "no room"}]},
        )
        assert chat.status_code == 503, chat.text
        assert chat.json()["error"]["code"] == "redis-full"
        assert r.zcard(JOB_INDEX_KEY) == jobs_before
    assert faults.final(stack.submit_text("room again")["id"])["status"] == "succeeded"


def test_a_stage_that_finds_redis_full_is_run_again_once_there_is_room(
    supervised: FaultStack,
) -> None:
    stack = supervised.stack
    job = stack.submit_text("slow:60")
    r = supervised.redis_server.client()
    wait_for(lambda: r.xlen(job_events_key(job["id"])) > 3, 30, "some tokens")
    with _full(r):
        # The stage cannot publish. Its worker may even exit (Celery cannot acknowledge the
        # task either; its supervisor starts it again), but the job is neither failed nor
        # dropped, and it keeps its claim, so the reaper requeues it once there is room.
        wait_for(lambda: r.hget(RUNNING_JOBS_KEY, job["id"]) is not None, 10, "the claim")
        assert stack.job(job["id"])["status"] == "answering"
        stopped = r.xlen(job_events_key(job["id"]))
        wait_for(
            lambda: b"left to be run again" in supervised.worker.process.log_path.read_bytes(),
            20,
            "the stage to give up for now",
        )
        assert r.xlen(job_events_key(job["id"])) == stopped
        assert r.hget(RUNNING_JOBS_KEY, job["id"]) is not None
    # Well before the broker's visibility timeout (60 s here) would redeliver the task.
    final = supervised.final(job["id"], timeout=45)
    assert final["status"] == "succeeded", final
    assert final["answer"].split() == [f"s{i}" for i in range(60)]
    assert final["answer_attempts"] == 2
