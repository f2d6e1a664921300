"""Housekeeping the gateway does in the background: reap jobs of dead workers, queue jobs of
dead gateways, expire audio.

Every gateway process runs the loop; a short Redis lock lets one of them work at a time.
  * Reaper: a stage claimed by a worker whose heartbeat expired is requeued, or, once it has
    used its attempts, failed with `worker-lost`. So no job stays `transcribing` forever.
  * Unsent jobs: a job recorded by a gateway that died before queueing it is queued, once
    `SUBMIT_GRACE_SECONDS` have passed (no live submission takes longer).
  * Retention: audio objects whose job or upload has expired are deleted from the store, and
    expired jobs leave the index.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from api.deps import Services
from shared.errors import WorkerLost
from shared.job_endings import fail_job
from shared.redis_keys import REAPER_LOCK_KEY
from shared.running import RunningJobs, StageClaim
from shared.schemas import JobStatus

logger = logging.getLogger(__name__)


def reap(services: Services, running: RunningJobs) -> int:
    """Requeue or fail the stages of dead workers; returns how many were handled.

    A claim is deleted only once its stage has been requeued or its job ended, and only if
    it is still the claim found stale: if sending the task fails, the claim stays for the
    next pass, and a stage claimed again meanwhile keeps its new claim.
    """
    handled = 0
    # A claim is written just before the worker's next beat names the job: allow two beats.
    grace = services.settings.worker_heartbeat_ttl_seconds
    for claim in running.stale(grace):
        try:
            _reap_one(services, claim)
        except Exception as exc:
            logger.warning(
                "reaping failed, the next pass tries again: %s", exc, extra={"job_id": claim.job_id}
            )
            continue
        running.release_stale(claim)
        handled += 1
    return handled


def _reap_one(services: Services, claim: StageClaim) -> None:
    job = services.jobs.get(claim.job_id)
    if job is None or job.status.is_terminal:
        return
    attempts = job.transcribe_attempts if claim.stage == "transcribe" else job.answer_attempts
    if attempts >= services.settings.max_stage_attempts:
        fail_job(
            services.jobs,
            services.events,
            job.id,
            WorkerLost(f"the worker running {claim.stage} died {attempts} times"),
        )
        logger.error("failed: worker-lost after %d attempts", attempts, extra={"job_id": job.id})
    else:
        services.queue.enqueue(job, from_stage=claim.stage)
        logger.warning(
            "requeued: worker %s died during %s",
            claim.worker,
            claim.stage,
            extra={"job_id": job.id},
        )


def send_unsent(services: Services) -> int:
    """Queue jobs whose gateway recorded them and died before queueing them."""
    sent = 0
    for job_id in services.jobs.unsent(older_than=services.settings.submit_grace_seconds):
        job = services.jobs.get(job_id)
        if job is not None and job.status is JobStatus.QUEUED:
            services.queue.enqueue(job)
            logger.warning("queued: its gateway died before queueing it", extra={"job_id": job_id})
            sent += 1
        services.jobs.sent(job_id)
    return sent


def sweep(services: Services) -> int:
    """Delete audio past its retention and drop expired jobs from the index."""
    services.jobs.forget(services.jobs.expired_ids())
    return services.expiry.sweep(services.store)


def run_once(services: Services, running: RunningJobs, interval: float) -> None:
    lock_seconds = max(1, int(interval * 2))
    if not services.redis.set(REAPER_LOCK_KEY, "1", nx=True, ex=lock_seconds):
        return
    reap(services, running)
    send_unsent(services)
    sweep(services)


async def maintain(services: Services, interval: float) -> None:
    """Run the housekeeping every `interval` seconds until cancelled."""
    running = RunningJobs(services.redis)
    while True:
        try:
            await run_in_threadpool(run_once, services, running, interval)
        except Exception as exc:
            # Redis or the store may be down for a while; the next pass tries again.
            logger.warning("maintenance pass failed: %s", exc)
        await asyncio.sleep(interval)
