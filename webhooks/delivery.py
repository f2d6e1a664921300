"""Delivering one webhook event: the body, its signature, one attempt, and what comes next.

The body is made at the first attempt and kept with the delivery, so every retry sends the same
bytes under the same `webhook-id`; only `webhook-timestamp` and the signature are made afresh
(receivers refuse timestamps older than a few minutes). After an attempt that is worth
retrying, the next is scheduled after a pause that doubles, with jitter, until
`retry_for_seconds` after the event have passed; then the delivery is given up as failed.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared.config import WebhookSettings
from shared.deliveries import Dispatch, WebhookDeliveries, job_of
from shared.jobs import JobRepository
from shared.webhook_secrets import WebhookSecretMissing, WebhookSecrets, sign
from shared.webhook_urls import Resolver, system_resolver
from webhooks.attempt import AttemptResult, attempt

logger = logging.getLogger(__name__)

USER_AGENT = "audiochat-webhooks/1"


def backoff(settings: WebhookSettings, attempts: int, retry_after: float | None) -> float:
    """Seconds before the next attempt after `attempts` failed ones: doubling, half of it
    random (so receivers that failed together are not all retried together), at least what
    the receiver asked for, at most `max_backoff_seconds`."""
    delay = min(settings.max_backoff_seconds, settings.backoff_seconds * 2.0 ** (attempts - 1))
    delay = delay / 2 + random.uniform(0, delay / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, settings.max_backoff_seconds)


class Deliverer:
    """Makes the attempt a dispatch asks for and records it."""

    def __init__(
        self,
        deliveries: WebhookDeliveries,
        jobs: JobRepository,
        secrets: WebhookSecrets,
        settings: WebhookSettings,
        resolve: Resolver = system_resolver,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._deliveries = deliveries
        self._jobs = jobs
        self._secrets = secrets
        self._settings = settings
        self._resolve = resolve
        self._clock = clock

    def run(self, dispatch: Dispatch) -> str | None:
        """Attempt the delivery once; returns its status after, or None if this dispatch no
        longer holds it (a later one does, or the job has expired)."""
        record = self._deliveries.current(dispatch)
        job_id = job_of(dispatch.delivery_id)
        if record is None:
            if not self._jobs.status(job_id):
                self._deliveries.drop(dispatch.delivery_id)
            return None
        extra = {"job_id": job_id}
        job = self._jobs.get(job_id)
        if job is None or job.webhook is None:
            return self._finish(dispatch, record, None, error="the job has expired")
        if "body" not in record:
            record["body"] = _body(
                record, job.model_dump(mode="json", exclude={"webhook", "links"})
            )
        tenant = self._jobs.tenant_of(job_id) or ""
        try:
            secret_values = self._secrets.signing_secrets(tenant)
        except WebhookSecretMissing as exc:
            return self._finish(dispatch, record, None, error=exc.message)
        timestamp = int(self._clock())
        body = record["body"].encode()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": dispatch.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret_values, dispatch.delivery_id, timestamp, body),
        }
        result = attempt(
            job.webhook.url,
            body,
            headers,
            timeout=self._settings.timeout_seconds,
            allowed_networks=self._settings.allowed_networks,
            resolve=self._resolve,
        )
        logger.info(
            "webhook %s attempt %d: %s (%s)",
            dispatch.delivery_id,
            len(record["attempts"]) + 1,
            result.verdict,
            result.error or result.status_code,
            extra=extra,
        )
        return self._finish(dispatch, record, result)

    def _finish(
        self,
        dispatch: Dispatch,
        record: dict[str, Any],
        result: AttemptResult | None,
        error: str | None = None,
    ) -> str:
        now = self._clock()
        if result is not None:
            record["attempts"].append(
                {
                    "at": now,
                    "seconds": result.seconds,
                    "status_code": result.status_code,
                    "error": result.error,
                }
            )
        next_at: float | None = None
        if result is not None and result.verdict == "delivered":
            record["status"] = "delivered"
        elif result is not None and result.verdict == "retry":
            next_at = now + backoff(self._settings, len(record["attempts"]), result.retry_after)
            if next_at > float(record["created_at"]) + self._settings.retry_for_seconds:
                next_at = None
                record["status"] = "failed"
        else:
            record["status"] = "failed"
            if error is not None:
                record["attempts"].append({"at": now, "seconds": 0.0, "error": error})
        record["next_attempt_at"] = next_at
        if next_at is None:
            record["finished_at"] = now
        if not self._deliveries.finish(dispatch, record, next_at):
            logger.warning("webhook %s was taken over by a later dispatch", dispatch.delivery_id)
        return str(record["status"])


def _body(record: dict[str, Any], job: dict[str, Any]) -> str:
    """The JSON body of a delivery: `type`, `timestamp` and `data`, as Standard Webhooks has it.
    `done` carries the whole job record; other events carry their own data."""
    data: dict[str, Any] = {"job_id": job["id"], **record.get("data", {})}
    if record["event"] == "done":
        data["job"] = job
    timestamp = datetime.fromtimestamp(float(record["created_at"]), UTC)
    return json.dumps(
        {"type": record["event"], "timestamp": timestamp.isoformat(), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    )
