"""`Idempotency-Key` on job submission: the same key and request give back the same job.

The first request with a key claims it (SET NX) together with a fingerprint of what was asked
and the id the job will have; a repeat with the same fingerprint gets that job back, a repeat
with another fingerprint is a 409. Keys belong to a tenant and expire with the jobs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import redis

from shared.events import idempotency_key
from shared.schemas import JobCreate


@dataclass(frozen=True)
class Claim:
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


class IdempotencyKeys:
    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self._redis = client
        self._retention = retention_seconds

    def _key(self, tenant: str, key: str) -> str:
        return idempotency_key(tenant, hashlib.sha256(key.encode()).hexdigest())

    def claim(self, tenant: str, key: str, claim: Claim) -> Claim | None:
        """Claim `key` for a new job; None if claimed now, else the earlier claim."""
        value = json.dumps({"job_id": claim.job_id, "fingerprint": claim.fingerprint})
        if self._redis.set(self._key(tenant, key), value, nx=True, ex=self._retention):
            return None
        raw = self._redis.get(self._key(tenant, key))
        if raw is None:  # expired between the two calls: try once more
            return self.claim(tenant, key, claim)
        earlier = json.loads(raw)
        return Claim(job_id=earlier["job_id"], fingerprint=earlier["fingerprint"])

    def release(self, tenant: str, key: str) -> None:
        """Give a key back after the job it was claimed for could not be created."""
        self._redis.delete(self._key(tenant, key))
