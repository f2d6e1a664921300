"""Every name audiochat uses in Redis: the keys, and the one channel events are published on.

Keys are built here and nowhere else, so what a process reads is what another wrote, and a
newcomer finds the whole keyspace in one file. What each key holds is said beside it; the code
that reads and writes it is named where that is not obvious.
"""

from __future__ import annotations

# Every job's events, published live; each gateway process subscribes once (shared/events.py).
EVENTS_CHANNEL = "audiochat:events"
JOB_INDEX_KEY = "audiochat:jobs"


def job_key(job_id: str) -> str:
    """The hash holding a job's record."""
    return f"audiochat:job:{job_id}"


def job_events_key(job_id: str) -> str:
    """The Redis Stream holding a job's event log."""
    return f"audiochat:job:{job_id}:events"


def worker_key(worker_name: str) -> str:
    """A worker's heartbeat record; it expires when the worker stops refreshing it."""
    return f"audiochat:worker:{worker_name}"


# Every worker's name, scored by when its heartbeat expires: finding the live workers is one
# range read, however many other keys Redis holds.
WORKERS_KEY = "audiochat:workers"

# Jobs whose stage is running now: job id -> {worker, stage, started}; the reaper's worklist.
RUNNING_JOBS_KEY = "audiochat:running"
# Stored objects and when they expire: key -> unix time. Swept when jobs and uploads expire.
OBJECT_EXPIRY_KEY = "audiochat:objects"
REAPER_LOCK_KEY = "audiochat:reaper:lock"
# Jobs recorded but not yet queued: job id -> when. A gateway that died in between left its job
# here; the maintenance loop queues it.
UNSENT_JOBS_KEY = "audiochat:unsent"


def tenant_jobs_key(tenant: str) -> str:
    """A tenant's jobs by creation time (for listing)."""
    return f"audiochat:tenant:{tenant}:jobs"


def tenant_active_key(tenant: str) -> str:
    """A tenant's jobs that have not ended, by creation time (for the per-key cap)."""
    return f"audiochat:tenant:{tenant}:active-jobs"


def tenant_storage_key(tenant: str, kind: str, bucket: int) -> str:
    """Bytes of one kind a tenant stored in one time bucket (shared/quota.py)."""
    return f"audiochat:tenant:{tenant}:stored:{kind}:{bucket}"


def rate_window_key(tenant: str, window: int) -> str:
    """Requests a tenant made in one rate-limit window."""
    return f"audiochat:tenant:{tenant}:rate:{window}"


def idempotency_key(tenant: str, key_hash: str) -> str:
    """What an `Idempotency-Key` was first used for."""
    return f"audiochat:tenant:{tenant}:idem:{key_hash}"


def upload_record_key(upload_id: str) -> str:
    """A recording uploaded on its own (`POST /v1/uploads`): who owns it, what it is."""
    return f"audiochat:upload:{upload_id}"


def job_sequence_key(job_id: str) -> str:
    """The counter that numbers a job's events."""
    return f"audiochat:job:{job_id}:seq"


def job_deliveries_key(job_id: str) -> str:
    """A hash of the job's webhook deliveries: delivery id -> its record (JSON)."""
    return f"audiochat:job:{job_id}:webhooks"


# Deliveries waiting for their next attempt, scored by when it is due (unix time).
WEBHOOKS_DUE_KEY = "audiochat:webhooks:due"
# The current dispatch token of each delivery in flight: only the task carrying it may finish it.
WEBHOOK_TOKENS_KEY = "audiochat:webhooks:tokens"


def webhook_dispatcher_key(worker_name: str) -> str:
    """Refreshed by a webhook worker's dispatcher while it runs (its health check reads it);
    the name is `webhooks-{pid}@{hostname}`."""
    return f"audiochat:webhooks:dispatcher:{worker_name}"


def webhook_secret_key(tenant: str) -> str:
    """A tenant's webhook signing secret, and the previous one while it is still honoured."""
    return f"audiochat:tenant:{tenant}:webhook-secret"
