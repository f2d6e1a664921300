"""Redis frozen (SIGSTOP), not stopped: connections stay open and nothing answers."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import redis

from shared.jobs import utcnow
from shared.workers import WorkerInfo, WorkerRegistry
from testbed.processes import RedisServer, wait_for
from tests.faults.conftest import FaultStack


def _freeze(server: RedisServer) -> None:
    assert server.process.popen is not None
    server.process.popen.send_signal(signal.SIGSTOP)


def _thaw(server: RedisServer) -> None:
    assert server.process.popen is not None
    server.process.popen.send_signal(signal.SIGCONT)


def test_a_beat_held_up_by_a_frozen_redis_counts_from_when_it_lands(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        registry = WorkerRegistry(redis.Redis.from_url(server.url()), ttl_seconds=3)
        info = WorkerInfo(
            name="echo-1@host",
            model="echo",
            queue="model.echo",
            device="cpu",
            pid=1,
            hostname="host",
            started_at=utcnow(),
        )
        registry.beat(info)
        _freeze(server)
        try:
            beat = threading.Thread(target=registry.beat, args=(info,))
            beat.start()
            # Frozen for longer than the heartbeat lives: the fault under test is the wait.
            time.sleep(4)
        finally:
            _thaw(server)
        beat.join(timeout=10)
        assert not beat.is_alive()
        # The beat landed just now: the worker is alive for another 3 s, not expired already.
        assert [w.name for w in registry.live_workers()] == [info.name]
    finally:
        server.stop()


def test_requests_fail_fast_while_redis_is_frozen_and_jobs_run_once_it_thaws(
    faults: FaultStack,
) -> None:
    stack = faults.stack
    job = stack.submit_text("before the freeze")
    assert faults.final(job["id"])["status"] == "succeeded"
    _freeze(faults.redis_server)
    try:
        for method, path in (
            ("GET", f"/v1/jobs/{job['id']}"),
            ("POST", "/v1/jobs"),
            ("GET", f"/v1/jobs/{job['id']}/events"),
        ):
            started = time.monotonic()
            response = stack.http.request(method, path, json={"question": "x"}, timeout=15)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, (path, response.text)
            assert response.json()["code"] == "service-unavailable"
            assert "retry-after" in response.headers
            # Two-second connect and read timeouts, no retries (measured, not timed-out).
            assert elapsed < 3.0, (path, elapsed)
        # Past the worker's heartbeat lifetime (3 s in this stack).
        time.sleep(max(0.0, 4.0 - (time.monotonic() - started)))
    finally:
        _thaw(faults.redis_server)
    # The worker's held-up beat lands first: a job submitted now finds the worker alive.
    wait_for(lambda: bool(faults.redis_server.client().ping()), 10, "redis to answer")
    after = stack.http.post("/v1/jobs", json={"question": "after the freeze"})
    assert after.status_code == 202, after.text
    assert faults.final(after.json()["id"])["status"] == "succeeded"
