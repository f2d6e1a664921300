"""Limits that keep an overloaded or abused gateway honest: request rate and caps.

(How large and how slow a request body may be: api/request_body.py.)
"""

from __future__ import annotations

import time

import redis
import redis.asyncio as aioredis

from shared.errors import QueueFull, TooManyActiveJobs, TooManyRequests
from shared.jobs import JobRepository
from shared.redis_keys import rate_window_key
from shared.tasks import queue_for_model


async def check_rate(client: aioredis.Redis, tenant: str, per_minute: int) -> None:
    """Count one request against the tenant's budget for this minute; 429 when over it."""
    if per_minute <= 0:
        return
    now = time.time()
    window = int(now // 60)
    key = rate_window_key(tenant, window)
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int((await pipe.execute())[0])
    if count > per_minute:
        retry_after = max(1, int(60 - now % 60))
        raise TooManyRequests(
            f"more than {per_minute} requests this minute", retry_after=retry_after
        )


def check_capacity(
    client: redis.Redis,
    jobs: JobRepository,
    tenant: str,
    model: str,
    max_active: int,
    max_queue_depth: int,
) -> None:
    """Refuse a new job when the tenant has too many running, or the model's queue is full."""
    if max_active > 0 and jobs.active_count(tenant) >= max_active:
        raise TooManyActiveJobs(f"{max_active} jobs of this key have not ended yet", retry_after=5)
    depth = int(client.llen(queue_for_model(model)))
    if depth >= max_queue_depth:
        raise QueueFull(f"{depth} jobs are waiting for model {model!r}", retry_after=10)
