"""Stored audio expires with the job or upload it belongs to.

Redis keys expire by themselves; objects in the store do not. Every stored object is recorded
with its expiry time, and a sweeper (run by the gateway's maintenance loop) deletes those whose
time has come.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from shared.redis_keys import OBJECT_EXPIRY_KEY
from shared.storage import AudioStore

logger = logging.getLogger(__name__)


class ObjectExpiry:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self._redis = client
        self._retention = retention_seconds

    def track(self, *keys: str) -> None:
        """Record that these objects expire one retention period from now."""
        if keys:
            expires = time.time() + self._retention
            self._redis.zadd(OBJECT_EXPIRY_KEY, dict.fromkeys(keys, expires))

    def sweep(self, store: AudioStore, limit: int = 500) -> int:
        """Delete objects whose time has come; returns how many were deleted."""
        due: Any = self._redis.zrangebyscore(
            OBJECT_EXPIRY_KEY, "-inf", time.time(), start=0, num=limit
        )
        deleted = 0
        for raw in due:
            key = raw.decode() if isinstance(raw, bytes) else raw
            try:
                store.delete(key)
            except Exception as exc:
                logger.warning("could not delete expired object %s: %s", key, exc)
                continue
            self._redis.zrem(OBJECT_EXPIRY_KEY, key)
            deleted += 1
        return deleted
