"""Worker heartbeats in Redis: which workers are alive, and which model each one serves."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import redis
from pydantic import BaseModel, Field

from shared.events import WORKERS_KEY, worker_key


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
    # How many stages the worker runs at once, and the jobs whose stages it runs at the beat.
    concurrency: int = 1
    current_jobs: list[str] = Field(default_factory=list)
    # The first of `current_jobs`, as workers from before concurrent stages wrote it.
    current_job: str | None = None


class WorkerRegistry:
    """Reads and writes heartbeat records; a record lives `ttl_seconds` past its last beat."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = 15) -> None:
        self._redis = client
        self.ttl_seconds = ttl_seconds

    def beat(self, info: WorkerInfo) -> None:
        expires = time.time() + self.ttl_seconds
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(worker_key(info.name), info.model_dump_json(), ex=self.ttl_seconds)
            pipe.zadd(WORKERS_KEY, {info.name: expires})
            pipe.execute()

    def remove(self, name: str) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(worker_key(name))
            pipe.zrem(WORKERS_KEY, name)
            pipe.execute()

    def live_workers(self, model: str | None = None) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired, optionally only those serving `model`."""
        now = time.time()
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(WORKERS_KEY, "-inf", now)
            pipe.zrangebyscore(WORKERS_KEY, now, "+inf")
            names: Any = pipe.execute()[1]
        if not names:
            return []
        workers = []
        keys = [worker_key(n.decode() if isinstance(n, bytes) else n) for n in names]
        for raw in self._redis.mget(keys):
            if raw is None:
                continue
            info = WorkerInfo.model_validate(json.loads(raw))
            if model is None or info.model == model:
                workers.append(info)
        return sorted(workers, key=lambda w: w.name)
