"""A stack of its own for fault tests: they stop and kill its processes, Redis and S3 included.

Timings are shortened (heartbeats, reaping, time limits, back-off) so faults resolve in
seconds; nothing here asserts on time, only on how every job ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from shared.workers import WorkerRegistry
from testbed.processes import S3_ENV, RedisServer, S3Server, Worker, wait_for
from tests.conftest import start_stack
from tests.support.stack import Stack

FAULT_SETTINGS = {
    "AUDIOCHAT_MODEL": "echo",
    "AUDIOCHAT_WORKER_HEARTBEAT_TTL_SECONDS": "3",
    "AUDIOCHAT_MAINTENANCE_INTERVAL_SECONDS": "0.5",
    "AUDIOCHAT_MAX_STAGE_ATTEMPTS": "3",
    "AUDIOCHAT_STORAGE_ATTEMPTS": "3",
    "AUDIOCHAT_STORAGE_BACKOFF_SECONDS": "0.2",
    "AUDIOCHAT_ANSWER_SOFT_TIME_LIMIT": "8",
    "AUDIOCHAT_ANSWER_TIME_LIMIT": "10",
    "AUDIOCHAT_TRANSCRIBE_SOFT_TIME_LIMIT": "20",
    "AUDIOCHAT_TRANSCRIBE_TIME_LIMIT": "30",
    "AUDIOCHAT_BROKER_VISIBILITY_TIMEOUT": "60",
    "AUDIOCHAT_REDIS_MAX_CONNECTIONS": "8",
    # Workers retry Redis for 1 to about 3.5 s, so outage tests stay short.
    "AUDIOCHAT_REDIS_OUTAGE_SECONDS": "1",
    # Several stages at once, as a GPU worker runs them: every fault meets a busy worker.
    "AUDIOCHAT_WORKER_CONCURRENCY": "4",
    # A key claimed by a gateway that died mid-submission is free again after this.
    "AUDIOCHAT_SUBMIT_GRACE_SECONDS": "3",
}

BUCKET = "audiochat-faults"


@dataclass
class FaultStack:
    """The stack, its own Redis and S3 servers, and a supervisor that restarts a dead worker."""

    stack: Stack
    redis_server: RedisServer
    s3_server: S3Server
    supervise: threading.Event = field(default_factory=threading.Event)

    @property
    def worker(self) -> Worker:
        return self.stack.workers[0]

    def worker_ready(self) -> bool:
        """The worker process is up and its heartbeat says it can take jobs."""
        process = self.worker.process
        if not process.alive():
            return False
        registry = WorkerRegistry(self.redis_server.client())
        return any(w.pid == process.pid for w in registry.live_workers())

    def wait_worker_ready(self) -> None:
        wait_for(self.worker_ready, 90, "the worker to be back and ready", interval=0.2)

    def restart_s3(self) -> None:
        """Start the S3 server again; a fresh moto server has no buckets, unlike MinIO."""
        self.s3_server.start()
        s3: Any = boto3.client(
            "s3",
            endpoint_url=self.s3_server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)

    def final(self, job_id: str, timeout: float = 90) -> dict[str, Any]:
        """Wait for a job to end and return its record."""
        record: dict[str, Any] = {}

        def ended() -> bool:
            response = self.stack.http.get(f"/v1/jobs/{job_id}")
            record.update(response.json())
            return response.status_code == 200 and record["status"] in {
                "succeeded",
                "failed",
                "canceled",
            }

        wait_for(ended, timeout, f"job {job_id} to end", interval=0.2)
        return record


def _supervise(faults: FaultStack, stop: threading.Event) -> None:
    """Like a process supervisor: while asked to, restart the worker whenever it dies."""
    while not stop.wait(0.2):
        if faults.supervise.is_set() and not faults.worker.process.alive():
            # If it dies again while starting, the next round tries again.
            with contextlib.suppress(RuntimeError):
                faults.worker.start()


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    workdir: Path = tmp_path_factory.mktemp("faults")
    # Persistence on, fsync on every write: queued jobs must survive a Redis restart.
    redis_server = RedisServer(workdir / "redis", "--appendonly", "yes", "--appendfsync", "always")
    redis_server.start()
    s3_server = S3Server(workdir)
    s3_server.start()
    env = {
        **FAULT_SETTINGS,
        "AUDIOCHAT_STORAGE_URL": f"s3://{BUCKET}",
        "AUDIOCHAT_S3__ENDPOINT_URL": s3_server.endpoint_url,
        **S3_ENV,
    }
    stack = start_stack(
        workdir,
        redis_server.url(0),
        env,
        {"worker-faults": {"AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:ScriptedBackend"}},
    )
    fault_stack = FaultStack(stack, redis_server, s3_server)
    stop = threading.Event()
    supervisor = threading.Thread(target=_supervise, args=(fault_stack, stop), daemon=True)
    supervisor.start()
    yield fault_stack
    stop.set()
    supervisor.join()
    stack.close()
    s3_server.stop()
    redis_server.stop()


@pytest.fixture
def supervised(faults: FaultStack) -> Iterator[FaultStack]:
    """The fault stack with its worker restarted whenever it dies, for this test."""
    faults.supervise.set()
    yield faults
    faults.supervise.clear()
    faults.wait_worker_ready()
