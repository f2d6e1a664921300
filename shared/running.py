"""Which worker runs which job's stage now: the lease that makes stages safe to redeliver.

A worker claims a job's stage before running it. The claim counts an attempt and records the
worker; a claim fails while another worker whose heartbeat is alive holds the job, so a task
delivered twice never runs twice at once. When a worker dies, its heartbeat expires and the
reaper finds its claims stale.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from shared.redis_keys import RUNNING_JOBS_KEY, job_key, worker_key

# KEYS: running hash, job record. ARGV: job id, worker, stage, now, worker-key prefix.
# Returns the stage's attempt number, or -1 if a live worker holds the job.
_CLAIM_SCRIPT = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local holder = cjson.decode(held)['worker']
  if holder ~= ARGV[2] and redis.call('EXISTS', ARGV[5] .. holder) == 1 then return -1 end
end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local attempts = redis.call('HINCRBY', KEYS[2], ARGV[3] .. '_attempts', 1)
redis.call('HSET', KEYS[1], ARGV[1],
  cjson.encode({worker = ARGV[2], stage = ARGV[3], started = tonumber(ARGV[4])}))
return attempts
"""

HELD_ELSEWHERE = -1

# Deletes a claim only if it is still the one the caller read: a claim made since (the stage
# started again on another worker) is left alone. KEYS: running hash. ARGV: job id, claim.
_RELEASE_IF_UNCHANGED_SCRIPT = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


# Deletes a claim only if this worker still holds it for this stage: a stage that outlived the
# reaper's decision must not delete the claim of the worker now running the job again.
# KEYS: running hash. ARGV: job id, worker, stage.
_RELEASE_OWN_SCRIPT = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return 0 end
local claim = cjson.decode(held)
if claim['worker'] == ARGV[2] and claim['stage'] == ARGV[3] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


@dataclass(frozen=True)
class StageClaim:
    """A worker's hold on a job's stage while it runs it (read back by the reaper)."""

    job_id: str
    worker: str
    stage: str
    started: float
    # The claim as stored, to tell it from a later claim of the same job.
    raw: bytes = b""


class RunningJobs:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._claim = client.register_script(_CLAIM_SCRIPT)
        self._release_if_unchanged = client.register_script(_RELEASE_IF_UNCHANGED_SCRIPT)
        self._release_own = client.register_script(_RELEASE_OWN_SCRIPT)

    def claim(self, job_id: str, worker: str, stage: str) -> int:
        """This stage's attempt number (1 the first time); HELD_ELSEWHERE if a live worker
        runs the job; 0 if the job no longer exists."""
        args: list[str | float] = [job_id, worker, stage, time.time(), worker_key("")]
        return int(self._claim(keys=[RUNNING_JOBS_KEY, job_key(job_id)], args=args))

    def release(self, job_id: str, worker: str, stage: str) -> bool:
        """Delete the claim `worker` made for `stage` of the job, once the stage has ended; a
        claim someone else holds now is left alone (False)."""
        args = [job_id, worker, stage]
        return bool(self._release_own(keys=[RUNNING_JOBS_KEY], args=args))

    def release_stale(self, claim: StageClaim) -> bool:
        """Delete a claim found stale, unless the job has been claimed again since."""
        args: list[str | bytes] = [claim.job_id, claim.raw]
        return bool(self._release_if_unchanged(keys=[RUNNING_JOBS_KEY], args=args))

    def stale(self, grace_seconds: float) -> list[StageClaim]:
        """Claims nobody is working on: the worker's heartbeat expired, or the worker is
        alive but its heartbeat shows another job (its stage died without ending the job,
        say while Redis was down), for longer than `grace_seconds` after the claim."""
        raw: Any = self._redis.hgetall(RUNNING_JOBS_KEY)
        claims = [
            StageClaim(job_id=k.decode() if isinstance(k, bytes) else k, raw=v, **json.loads(v))
            for k, v in raw.items()
        ]
        if not claims:
            return []
        beats = self._redis.mget([worker_key(c.worker) for c in claims])
        now = time.time()
        stale = []
        for claim, beat in zip(claims, beats, strict=True):
            if beat is None or (
                claim.job_id not in _jobs_running(json.loads(beat))
                and now - claim.started > grace_seconds
            ):
                stale.append(claim)
        return stale


def _jobs_running(beat: dict[str, Any]) -> list[str]:
    """The jobs a heartbeat names: `current_jobs`, or a worker from before concurrent stages's
    `current_job`."""
    jobs = beat.get("current_jobs")
    if jobs:
        return list(jobs)
    current = beat.get("current_job")
    return [current] if current else []
