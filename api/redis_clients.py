"""The gateway's two Redis clients, and how long any Redis call of a request may take.

A process has two connection pools, because redis-py's sync and asyncio clients cannot share
one: the sync pool serves the routes and services that run in the thread pool, the asyncio pool
the event hub (its one subscription holds a connection for good) and the event streams' replays.
Each blocks beyond `redis_max_connections`, so a gateway process opens at most twice that many
connections to Redis, plus those of the Celery producer's pool (`api/queue.py`; Celery's
`broker_pool_limit`, 10 by default), however many clients follow jobs.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis

from shared.config import Settings

# A request fails within about this long while Redis is down or frozen (connect and read each
# time out after it; no retries), rather than hanging: the client gets 503 and retries.
REDIS_TIMEOUT_SECONDS = 2


def _pool_options(settings: Settings) -> dict[str, Any]:
    return {
        "max_connections": settings.redis_max_connections,
        # How long a request waits for a free connection when all are in use.
        "timeout": REDIS_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
        "health_check_interval": 30,
    }


def open_redis(settings: Settings) -> tuple[redis.Redis, aioredis.Redis]:
    """The sync and the asyncio client, each on its own bounded pool."""
    sync_client = redis.Redis(
        connection_pool=redis.BlockingConnectionPool.from_url(
            settings.redis_url, **_pool_options(settings)
        )
    )
    # The event subscription reads without a timeout all the same (redis-py blocks on pub/sub
    # reads); every other command on this pool fails like the sync ones.
    async_client = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, **_pool_options(settings)
        )
    )
    return sync_client, async_client
