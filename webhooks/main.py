"""Starting a webhook worker: the dispatcher thread, then Celery's thread pool on `webhooks`."""

from __future__ import annotations

import logging
import os
import socket

import redis

from shared.config import Settings
from shared.deliveries import WebhookDeliveries
from shared.jobs import JobRepository
from shared.tasks import WEBHOOKS_QUEUE
from shared.webhook_secrets import WebhookSecrets
from webhooks.app import create_webhook_app, register_delivery_task, send_delivery
from webhooks.delivery import Deliverer
from webhooks.dispatcher import Dispatcher

logger = logging.getLogger(__name__)


def lease_seconds(settings: Settings) -> float:
    """How long a dispatched delivery waits for its attempt to finish before it is sent again:
    time in the queue plus the attempt's own limit."""
    return 2 * settings.webhooks.timeout_seconds + 5


def run_webhook_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Deliver webhooks until stopped; needs Redis only (no model, no store)."""
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
    )
    deliveries = WebhookDeliveries(client)
    deliverer = Deliverer(
        deliveries,
        JobRepository(client, settings.job_retention_seconds),
        WebhookSecrets(client, settings.webhooks.secret_rotation_grace_seconds),
        settings.webhooks,
    )
    app = create_webhook_app(settings)
    register_delivery_task(app, deliverer)
    name = f"webhooks-{os.getpid()}@{socket.gethostname()}"
    dispatcher = Dispatcher(
        client,
        deliveries,
        lambda dispatch: send_delivery(app, dispatch),
        lease_seconds=lease_seconds(settings),
        worker_name=name,
    )
    dispatcher.start()
    logger.info("webhook worker %s consuming %s", name, WEBHOOKS_QUEUE)
    try:
        app.worker_main(
            [
                "worker",
                "--pool=threads",
                f"--concurrency={settings.webhooks.concurrency}",
                f"--queues={WEBHOOKS_QUEUE}",
                f"--hostname={name}",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        dispatcher.stop()
