"""How many bytes a tenant keeps stored, against its quota: one for the text of its jobs (kept
in Redis), one for its audio (kept in the store).

Everything a tenant stores expires one retention period after it was made, so usage is counted
in time buckets, each expiring once the last thing it counts has: usage is the sum of the live
buckets (at most about a hundred), and it falls by itself as jobs and uploads expire. Checking
and adding is one script, so concurrent requests cannot pass the quota together.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from shared.errors import StorageQuotaExceeded
from shared.redis_keys import tenant_storage_key

# KEYS: the tenant's buckets, oldest first, the current one last. ARGV: bytes to add, quota,
# when the current bucket expires (unix seconds). Returns {1, used after} or, refused,
# {0, used, seconds until the oldest bucket that counts something expires}.
_RESERVE_SCRIPT = """
local used, oldest = 0, nil
for _, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  if n > 0 and not oldest then oldest = key end
  used = used + n
end
local wanted = tonumber(ARGV[1])
if used + wanted > tonumber(ARGV[2]) then
  return {0, used, oldest and redis.call('TTL', oldest) or 1}
end
redis.call('INCRBY', KEYS[#KEYS], wanted)
redis.call('EXPIREAT', KEYS[#KEYS], ARGV[3])
return {1, used + wanted}
"""
# Gives bytes back to the bucket they were taken from, if it has not expired meanwhile.
_RELEASE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECRBY', KEYS[1], ARGV[1]) end
"""

# Counted for every job on top of its question and history: its record, answer, transcript and
# event log, which the worker writes later (bounded by the token and audio limits).
JOB_RECORD_ALLOWANCE = 32 * 1024

# Buckets per retention period: a bucket outlives what it counts by at most 1 % of it.
_BUCKETS = 100


class Stored(StrEnum):
    RECORDS = "records"  # the text of jobs: questions, history, answers, events (Redis)
    AUDIO = "audio"  # uploaded audio (the store)


@dataclass(frozen=True)
class Reservation:
    """Bytes counted against a tenant's quota, to give back if what they were for failed."""

    key: str
    bytes: int


class StorageQuota:
    """Counts what tenants keep stored, refusing what would take one over its quota."""

    def __init__(
        self, client: redis.Redis, retention_seconds: int, limits: dict[Stored, int]
    ) -> None:
        self._retention = retention_seconds
        self._width = max(1, math.ceil(retention_seconds / _BUCKETS))
        # 0: no quota for that kind.
        self._limits = limits
        self._reserve = client.register_script(_RESERVE_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    def reserve(self, tenant: str, kind: Stored, nbytes: int) -> Reservation | None:
        """Count `nbytes` more for the tenant; StorageQuotaExceeded if that is over its quota.
        None when there is no quota for `kind`."""
        limit = self._limits.get(kind, 0)
        if limit <= 0:
            return None
        current = int(time.time() // self._width)
        first = current - math.ceil(self._retention / self._width) - 1
        keys = [tenant_storage_key(tenant, kind.value, b) for b in range(first, current + 1)]
        expires = (current + 1) * self._width + self._retention
        result: Any = self._reserve(keys=keys, args=[nbytes, limit, expires])
        if not int(result[0]):
            used, wait = int(result[1]), max(1, int(result[2]))
            raise StorageQuotaExceeded(
                f"this key keeps {_size(used)} of {kind.value} stored; {_size(nbytes)} more "
                f"would pass its quota of {_size(limit)}. Space comes back as jobs and uploads "
                "expire.",
                retry_after=wait,
            )
        return Reservation(keys[-1], nbytes)

    def release(self, *reservations: Reservation | None) -> None:
        """Give back what was reserved for something that was not stored after all."""
        for reservation in reservations:
            if reservation is not None:
                self._release(keys=[reservation.key], args=[reservation.bytes])


def _size(nbytes: int) -> str:
    return f"{nbytes / 1_000_000:.1f} MB" if nbytes >= 100_000 else f"{nbytes} bytes"
