"""`Idempotency-Key` on job submission: the same key and request give back the same job.

The first request with a key claims it (SET NX) together with a fingerprint of what was asked
and the id the job will have; a repeat with the same fingerprint gets that job back, a repeat
with another fingerprint is a 409. Keys belong to a tenant and expire with the jobs.

A claim is pending until its job has been created and queued: it lives only
`pending_seconds`, then is kept for the retention. So a gateway that dies mid-submission
locks the key for that long, not for the retention; a retry meanwhile gets 409 with
`Retry-After`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import redis

from shared.redis_keys import idempotency_key
from shared.schemas import JobCreate


@dataclass(frozen=True)
class IdempotencyClaim:
    """What an `Idempotency-Key` was first used for: the job, and a fingerprint of the request."""

    job_id: str
    fingerprint: str


def fingerprint(options: JobCreate, audio: Sequence[BinaryIO]) -> str:
    """What the request asks for: its options and the bytes of its audio (not the multipart
    encoding, whose boundaries differ from one send to the next)."""
    digest = hashlib.sha256(options.model_dump_json(exclude_defaults=True).encode())
    for stream in audio:
        stream.seek(0)
        while chunk := stream.read(1024 * 1024):
            digest.update(hashlib.sha256(chunk).digest())
        stream.seek(0)
    return digest.hexdigest()


# Keeps a claim for the retention once its job exists: the claim is still ours, or (a
# submission slower than the pending time) nobody has claimed the key since. 0 if another
# request holds the key now.
_CONFIRM_SCRIPT = """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


class IdempotencyKeys:
    def __init__(self, client: redis.Redis, retention_seconds: int, pending_seconds: int) -> None:
        self._redis = client
        self._retention = retention_seconds
        self._pending = pending_seconds
        self._confirm = client.register_script(_CONFIRM_SCRIPT)

    def _key(self, tenant: str, key: str) -> str:
        return idempotency_key(tenant, hashlib.sha256(key.encode()).hexdigest())

    @staticmethod
    def _value(claim: IdempotencyClaim) -> str:
        return json.dumps({"job_id": claim.job_id, "fingerprint": claim.fingerprint})

    def claim(self, tenant: str, key: str, claim: IdempotencyClaim) -> IdempotencyClaim | None:
        """Claim `key` for a new job; None if claimed now, else the earlier claim."""
        name = self._key(tenant, key)
        if self._redis.set(name, self._value(claim), nx=True, ex=self._pending):
            return None
        raw = self._redis.get(name)
        if raw is None:  # expired between the two calls: try once more
            return self.claim(tenant, key, claim)
        earlier = json.loads(raw)
        return IdempotencyClaim(job_id=earlier["job_id"], fingerprint=earlier["fingerprint"])

    def confirm(self, tenant: str, key: str, claim: IdempotencyClaim) -> bool:
        """Keep the claim for the retention now that its job exists; False if the key was
        claimed by another request meanwhile (this one outlived its pending time)."""
        args: list[str | int] = [self._value(claim), self._retention]
        return bool(self._confirm(keys=[self._key(tenant, key)], args=args))

    def seconds_left(self, tenant: str, key: str) -> int:
        """How long the key's claim lives on (0 if it is gone)."""
        return max(0, int(self._redis.ttl(self._key(tenant, key))))

    def release(self, tenant: str, key: str) -> None:
        """Give a key back after the job it was claimed for could not be created."""
        self._redis.delete(self._key(tenant, key))
