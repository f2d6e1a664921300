"""Worker heartbeats in Redis: which workers are alive, and which model each one serves."""

from __future__ import annotations

import json
from datetime import datetime

import redis
from pydantic import BaseModel

from shared.events import WORKER_KEY_PATTERN, worker_key


class WorkerInfo(BaseModel):
    name: str
    model: str
    queue: str
    device: str
    pid: int
    hostname: str
    started_at: datetime
    jobs_done: int = 0
    memory_bytes: int | None = None
    # The job whose stage this worker is running at the time of the beat.
    current_job: str | None = None


class WorkerRegistry:
    """Reads and writes heartbeat records; a record lives `ttl_seconds` past its last beat."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = 15) -> None:
        self._redis = client
        self.ttl_seconds = ttl_seconds

    def beat(self, info: WorkerInfo) -> None:
        self._redis.set(worker_key(info.name), info.model_dump_json(), ex=self.ttl_seconds)

    def remove(self, name: str) -> None:
        self._redis.delete(worker_key(name))

    def live_workers(self, model: str | None = None) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired, optionally only those serving `model`."""
        keys = list(self._redis.scan_iter(match=WORKER_KEY_PATTERN, count=100))
        workers = []
        for raw in self._redis.mget(keys) if keys else []:
            if raw is None:
                continue
            info = WorkerInfo.model_validate(json.loads(raw))
            if model is None or info.model == model:
                workers.append(info)
        return sorted(workers, key=lambda w: w.name)
