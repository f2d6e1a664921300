"""A webhook worker killed mid-attempt, and messages it does not expect: the delivery still
arrives, under the same id, and only once per token.

Jobs are made in-process (a record with a webhook, then its `done` event, exactly as a model
worker ends a job); the webhook workers are real processes on the real Redis, and the receiver
is a real HTTP server on loopback.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from standardwebhooks.webhooks import Webhook

from shared.deliveries import WebhookDeliveries
from shared.events import EventPublisher
from shared.job_endings import end_job
from shared.jobs import JobRepository
from shared.redis_keys import job_deliveries_key, job_key
from shared.schemas import JobStatus, JobWebhook
from shared.tasks import DELIVER_WEBHOOK_TASK, WEBHOOKS_QUEUE
from shared.webhook_secrets import WebhookSecrets
from testbed.processes import RedisServer, WebhookWorker, wait_for
from tests.support.jobs import typed_job
from tests.support.receivers import Receiver

DB = 11
TIMEOUT_SECONDS = 2


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis_server.client(DB)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def _env(redis_server: RedisServer, **extra: str) -> dict[str, str]:
    return {
        "AUDIOCHAT_REDIS_URL": redis_server.url(DB),
        "AUDIOCHAT_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "AUDIOCHAT_WEBHOOKS__TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        "AUDIOCHAT_WEBHOOKS__BACKOFF_SECONDS": "0.2",
        **extra,
    }


def _finished_job(client: redis.Redis, url: str) -> str:
    """A job with a webhook that has just succeeded: its `done` delivery is due now."""
    jobs = JobRepository(client, 3600)
    job = typed_job(webhook=JobWebhook(url=url, events=["done"]))
    jobs.create(job)
    assert end_job(jobs, EventPublisher(client, 3600), job.id, JobStatus.SUCCEEDED, answer="a")
    return job.id


def _deliveries(client: redis.Redis, job_id: str) -> list[dict[str, object]]:
    job = JobRepository(client, 3600).get(job_id)
    assert job is not None and job.webhook is not None
    return [d.model_dump(mode="json") for d in job.webhook.deliveries]


def test_a_worker_killed_mid_attempt_leaves_the_delivery_to_the_next_one(
    client: redis.Redis, redis_server: RedisServer, receiver: Receiver, tmp_path: Path
) -> None:
    secret = WebhookSecrets(client, 0).rotate("default").secret
    assert secret is not None
    path = f"/hang-once/{uuid.uuid4().hex}"
    job_id = _finished_job(client, receiver.url(path))
    first = WebhookWorker(_env(redis_server), tmp_path, "webhooks-1")
    first.start()
    try:
        receiver.wait_for(path)  # the attempt is in flight: the receiver holds it
        first.stop(signal.SIGKILL)
    finally:
        first.stop()
    (pending,) = _deliveries(client, job_id)
    assert pending["status"] == "pending" and pending["attempts"] == []
    second = WebhookWorker(_env(redis_server), tmp_path, "webhooks-2")
    second.start()
    try:
        requests = receiver.wait_for(path, 2, timeout=4 * TIMEOUT_SECONDS + 20)
        wait_for(lambda: _deliveries(client, job_id)[0]["status"] == "delivered", 10, "delivered")
    finally:
        second.stop()
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        Webhook(secret).verify(request.body, request.headers)
    (delivered,) = _deliveries(client, job_id)
    assert [a["status_code"] for a in delivered["attempts"]] == [200]  # type: ignore[union-attr]


def test_stale_tokens_and_unknown_fields_from_a_newer_release_do_no_harm(
    client: redis.Redis, redis_server: RedisServer, receiver: Receiver, tmp_path: Path
) -> None:
    WebhookSecrets(client, 0).rotate("default")
    path = f"/ok/{uuid.uuid4().hex}"
    job_id = _finished_job(client, receiver.url(path))
    # Take the delivery as a dispatcher would, leased long enough that no other dispatch does.
    (dispatch,) = WebhookDeliveries(client).due(time.time(), lease_seconds=300)
    producer = Celery("test-producer", broker=redis_server.url(DB), set_as_current=False)
    try:
        # One thread, first in first out: the stale message is handled before the good one.
        for token in (dispatch.token - 1, dispatch.token):
            producer.send_task(
                DELIVER_WEBHOOK_TASK,
                args=(dispatch.delivery_id, token),
                kwargs={"trace_parent": "00-from-a-newer-release"},
                queue=WEBHOOKS_QUEUE,
            )
    finally:
        producer.close()
    worker = WebhookWorker(
        _env(redis_server, AUDIOCHAT_WEBHOOKS__CONCURRENCY="1"), tmp_path, "webhooks-3"
    )
    worker.start()
    try:
        wait_for(lambda: _deliveries(client, job_id)[0]["status"] == "delivered", 20, "delivered")
    finally:
        worker.stop()
    assert len(receiver.received(path)) == 1
    # A record written by a newer release, with fields and events this one does not know.
    raw = client.hget(job_deliveries_key(job_id), dispatch.delivery_id)
    assert raw is not None
    client.hset(
        job_deliveries_key(job_id),
        dispatch.delivery_id,
        json.dumps({**json.loads(raw), "priority": 5}),
    )
    client.hset(
        job_key(job_id),
        "webhook",
        json.dumps({"url": receiver.url(path), "events": ["done", "answer.delta"], "mode": "x"}),
    )
    (delivery,) = _deliveries(client, job_id)
    assert delivery["status"] == "delivered" and "priority" not in delivery
