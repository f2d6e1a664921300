"""Job records in Redis, under audiochat's own keys (not Celery's result backend).

A record is a hash whose every value is JSON, so fields can be updated one at a time by the
stage that owns them. Records expire after the retention period; an index sorted by creation
time lets clients list recent jobs.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis
from pydantic_core import to_jsonable_python

from shared.events import JOB_INDEX_KEY, job_events_key, job_key, job_sequence_key
from shared.schemas import TERMINAL_STATUSES, JobRead, JobStatus

# Sets fields only while the job exists and has not ended, so a late stage or a redelivered
# task can never resurrect an expired job or overwrite a final state. Returns 1 if applied.
_UPDATE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
for i = 1, #ARGV do
  if status == ARGV[i] then return 0 end
  if ARGV[i] == '--' then
    for j = i + 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1]) end
    return 1
  end
end
return 0
"""


def new_job_id() -> str:
    """A fresh job id: random, URL-safe, never derived from client input."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobRepository:
    """Creates, reads and updates job records."""

    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self._redis = client
        self._retention = retention_seconds
        self._update = client.register_script(_UPDATE_SCRIPT)

    def create(self, job: JobRead) -> None:
        """Store a new job's record and add it to the index."""
        fields: dict[Any, Any] = _encode(job.model_dump(mode="json", exclude_none=True))
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job.id), mapping=fields)
            pipe.expire(job_key(job.id), self._retention)
            pipe.zadd(JOB_INDEX_KEY, {job.id: job.created_at.timestamp()})
            pipe.execute()

    def get(self, job_id: str) -> JobRead | None:
        """A job's record, or None when there is no such job (or it expired)."""
        raw = self._redis.hgetall(job_key(job_id))
        if not raw:
            return None
        return JobRead.model_validate(_decode(raw))

    def update(self, job_id: str, **fields: Any) -> bool:
        """Set fields of a job that has not ended; False if it ended or does not exist."""
        args: list[str] = [json.dumps(s.value) for s in TERMINAL_STATUSES]
        args.append("--")
        for name, value in _encode(_jsonable(fields)).items():
            args += [name, value]
        return bool(self._update(keys=[job_key(job_id)], args=args))

    def transition(self, job_id: str, status: JobStatus, **fields: Any) -> bool:
        """Move a job that has not ended to `status`, setting fields with it."""
        return self.update(job_id, status=status.value, **fields)

    def delete(self, job_id: str) -> None:
        """Remove a job's record, event log and index entry (its audio is the store's)."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(job_key(job_id), job_events_key(job_id), job_sequence_key(job_id))
            pipe.zrem(JOB_INDEX_KEY, job_id)
            pipe.execute()

    def list_recent(self, limit: int = 20) -> list[JobRead]:
        """The newest jobs first; index entries of expired jobs are dropped on the way."""
        self._redis.zremrangebyscore(JOB_INDEX_KEY, "-inf", time.time() - self._retention)
        ids: Any = self._redis.zrevrange(JOB_INDEX_KEY, 0, limit - 1)
        jobs = []
        for raw_id in ids:
            job = self.get(raw_id.decode() if isinstance(raw_id, bytes) else raw_id)
            if job is not None:
                jobs.append(job)
        return jobs


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    # Models, lists of models, enums and datetimes, as JSON would have them.
    return {name: to_jsonable_python(value) for name, value in fields.items()}


def _encode(fields: dict[str, Any]) -> dict[str, str]:
    return {name: json.dumps(value, ensure_ascii=False) for name, value in fields.items()}


def _decode(raw: dict[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else key
        out[name] = json.loads(value)
    return out
