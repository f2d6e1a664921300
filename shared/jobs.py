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

from shared.deliveries import WebhookDeliveries
from shared.redis_keys import (
    JOB_INDEX_KEY,
    UNSENT_JOBS_KEY,
    job_deliveries_key,
    job_events_key,
    job_key,
    job_sequence_key,
    tenant_active_key,
    tenant_jobs_key,
)
from shared.schemas import TERMINAL_STATUSES, JobRead, JobStatus

# Sets fields only while the job exists and has not ended, so a late stage or a redelivered
# task can never resurrect an expired job or overwrite a final state. A job that ends leaves
# its tenant's set of active jobs in the same step. Returns 1 if applied.
# ARGV: the job id, the JSON-encoded terminal statuses, '--', then field/value pairs.
_UPDATE_SCRIPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 0 end
local i = 2
while ARGV[i] ~= '--' do
  if status == ARGV[i] then return 0 end
  i = i + 1
end
local terminal = {}
for k = 2, i - 1 do terminal[ARGV[k]] = true end
for j = i + 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[j], ARGV[j + 1])
  if ARGV[j] == 'status' and terminal[ARGV[j + 1]] then
    local active = redis.call('HGET', KEYS[1], 'active_jobs')
    if active then redis.call('ZREM', cjson.decode(active), ARGV[1]) end
    -- Records written before active jobs were a sorted set name a plain set.
    local older = redis.call('HGET', KEYS[1], 'active_set')
    if older then redis.call('SREM', cjson.decode(older), ARGV[1]) end
  end
end
return 1
"""

# Counts a tenant's jobs that have not ended. Jobs that expired without ending (their worker
# was down, their task lost) leave the count with their records, so they cannot lock their
# tenant out. KEYS: the tenant's active jobs. ARGV: the creation time before which a job has
# expired, the prefix of job record keys.
_ACTIVE_COUNT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', ARGV[2] .. id) == 0 then redis.call('ZREM', KEYS[1], id) end
end
return redis.call('ZCARD', KEYS[1])
"""


DEFAULT_TENANT = "default"


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
        self._deliveries = WebhookDeliveries(client)
        self._active_count = client.register_script(_ACTIVE_COUNT_SCRIPT)

    def create(self, job: JobRead, tenant: str = DEFAULT_TENANT) -> None:
        """Store a new job's record for `tenant`, index it, and count it as active."""
        fields: dict[Any, Any] = _encode(
            {
                **job.model_dump(mode="json", exclude_none=True),
                "tenant": tenant,
                "active_jobs": tenant_active_key(tenant),
            }
        )
        created = job.created_at.timestamp()
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(job_key(job.id), mapping=fields)
            pipe.expire(job_key(job.id), self._retention)
            pipe.zadd(JOB_INDEX_KEY, {job.id: created})
            pipe.zadd(tenant_jobs_key(tenant), {job.id: created})
            pipe.expire(tenant_jobs_key(tenant), self._retention)
            pipe.zadd(tenant_active_key(tenant), {job.id: created})
            pipe.expire(tenant_active_key(tenant), self._retention)
            # Until `sent`: if its gateway dies before queueing it, another one will.
            pipe.zadd(UNSENT_JOBS_KEY, {job.id: created})
            pipe.execute()

    def sent(self, job_id: str) -> None:
        """The job's stages have been queued: nobody needs to queue it again."""
        self._redis.zrem(UNSENT_JOBS_KEY, job_id)

    def unsent(self, older_than: float, limit: int = 100) -> list[str]:
        """Jobs recorded more than `older_than` seconds ago and never marked as queued."""
        cutoff = time.time() - older_than
        ids: Any = self._redis.zrangebyscore(UNSENT_JOBS_KEY, "-inf", cutoff, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    def get(self, job_id: str, tenant: str | None = None) -> JobRead | None:
        """A job's record; None when there is no such job, it expired, or (when `tenant` is
        given) it belongs to another tenant: a job of someone else does not exist for you."""
        raw = self._redis.hgetall(job_key(job_id))
        if not raw:
            return None
        fields = _decode(raw)
        if tenant is not None and fields.get("tenant", DEFAULT_TENANT) != tenant:
            return None
        if "webhook" in fields:
            fields["webhook"]["deliveries"] = self._deliveries.for_job(job_id)
        return JobRead.model_validate(fields)

    def status(self, job_id: str) -> JobStatus | None:
        """Just the status of a job (one small read; stages poll it to notice a cancel)."""
        raw = self._redis.hget(job_key(job_id), "status")
        return JobStatus(json.loads(raw)) if raw else None

    def tenant_of(self, job_id: str) -> str | None:
        raw = self._redis.hget(job_key(job_id), "tenant")
        return json.loads(raw) if raw else None

    def active_count(self, tenant: str) -> int:
        """How many of the tenant's jobs have not ended."""
        cutoff = time.time() - self._retention
        args: list[float | str] = [cutoff, job_key("")]
        return int(self._active_count(keys=[tenant_active_key(tenant)], args=args))

    def update(self, job_id: str, **fields: Any) -> bool:
        """Set fields of a job that has not ended; False if it ended or does not exist."""
        args: list[str] = [job_id, *(json.dumps(s.value) for s in TERMINAL_STATUSES)]
        args.append("--")
        for name, value in _encode(_jsonable(fields)).items():
            args += [name, value]
        return bool(self._update(keys=[job_key(job_id)], args=args))

    def transition(self, job_id: str, status: JobStatus, **fields: Any) -> bool:
        """Move a job that has not ended to `status`, setting fields with it."""
        return self.update(job_id, status=status.value, **fields)

    def delete(self, job_id: str) -> None:
        """Remove a job's record, event log and index entries (its audio is the store's)."""
        tenant = self.tenant_of(job_id) or DEFAULT_TENANT
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(
                job_key(job_id),
                job_events_key(job_id),
                job_sequence_key(job_id),
                job_deliveries_key(job_id),
            )
            pipe.zrem(JOB_INDEX_KEY, job_id)
            pipe.zrem(tenant_jobs_key(tenant), job_id)
            pipe.zrem(tenant_active_key(tenant), job_id)
            pipe.zrem(UNSENT_JOBS_KEY, job_id)
            pipe.execute()

    def list_recent(self, tenant: str = DEFAULT_TENANT, limit: int = 20) -> list[JobRead]:
        """The tenant's newest jobs first; entries of expired jobs are dropped on the way."""
        index = tenant_jobs_key(tenant)
        self._redis.zremrangebyscore(index, "-inf", time.time() - self._retention)
        ids: Any = self._redis.zrevrange(index, 0, limit - 1)
        jobs = []
        for raw_id in ids:
            job = self.get(raw_id.decode() if isinstance(raw_id, bytes) else raw_id, tenant)
            if job is not None:
                jobs.append(job)
        return jobs

    def expired_ids(self, limit: int = 500) -> list[str]:
        """Ids of jobs past their retention that are still in the global index."""
        cutoff = time.time() - self._retention
        ids: Any = self._redis.zrangebyscore(JOB_INDEX_KEY, "-inf", cutoff, start=0, num=limit)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    def forget(self, job_ids: list[str]) -> None:
        """Drop expired jobs from the global index (their records expired by themselves)."""
        if job_ids:
            self._redis.zrem(JOB_INDEX_KEY, *job_ids)


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
