"""Worker heartbeats in Redis: which workers are alive, and which model each one serves."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis
from pydantic import BaseModel, Field

from shared.redis_keys import WORKERS_KEY, worker_key


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


# Both scripts read the clock of Redis, not of the caller: a beat that waited for a frozen
# Redis still counts from when Redis applies it, and hosts whose clocks disagree agree on
# which workers are alive.
# KEYS: the worker's record, the workers' index. ARGV: the record, its TTL, the worker's name.
_BEAT_SCRIPT = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local now = redis.call('TIME')
redis.call('ZADD', KEYS[2], tostring(now[1] + now[2] / 1e6 + ARGV[2]), ARGV[3])
"""
# KEYS: the workers' index. Returns the names whose beat has not expired.
_LIVE_SCRIPT = """
local now = redis.call('TIME')
local cutoff = tostring(now[1] + now[2] / 1e6)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)
return redis.call('ZRANGEBYSCORE', KEYS[1], cutoff, '+inf')
"""


class WorkerRegistry:
    """Reads and writes heartbeat records; a record lives `ttl_seconds` past its last beat."""

    def __init__(self, client: redis.Redis, ttl_seconds: int = 15) -> None:
        self._redis = client
        self.ttl_seconds = ttl_seconds
        self._beat = client.register_script(_BEAT_SCRIPT)
        self._live = client.register_script(_LIVE_SCRIPT)

    def beat(self, info: WorkerInfo) -> None:
        args: list[str | int] = [info.model_dump_json(), self.ttl_seconds, info.name]
        self._beat(keys=[worker_key(info.name), WORKERS_KEY], args=args)

    def remove(self, name: str) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(worker_key(name))
            pipe.zrem(WORKERS_KEY, name)
            pipe.execute()

    def live_workers(self, model: str | None = None) -> list[WorkerInfo]:
        """Workers whose heartbeat has not expired, optionally only those serving `model`."""
        names: Any = self._live(keys=[WORKERS_KEY])
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
