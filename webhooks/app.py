"""The webhook worker's Celery app and its one task, a thin shell around `Deliverer.run`."""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.config import Settings
from shared.deliveries import Dispatch
from shared.logging import job_context
from shared.tasks import DELIVER_WEBHOOK_TASK, WEBHOOKS_QUEUE
from webhooks.delivery import Deliverer
from worker.app import celery_config


def create_webhook_app(settings: Settings) -> Celery:
    """A Celery app for the `webhooks` queue: late acks, one message per thread at a time."""
    app = Celery("audiochat-webhooks", set_as_current=False)
    app.conf.update({**celery_config(settings), "task_default_queue": WEBHOOKS_QUEUE})
    return app


def register_delivery_task(app: Celery, deliverer: Deliverer) -> None:
    @app.task(name=DELIVER_WEBHOOK_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def deliver(delivery_id: str, token: int, **_newer: Any) -> None:
        # Keyword arguments a newer release may add are ignored, not a failure.
        with job_context(delivery_id.split("_")[1]):
            deliverer.run(Dispatch(delivery_id, int(token)))


def send_delivery(app: Celery, dispatch: Dispatch) -> None:
    """Queue one attempt of a delivery."""
    app.send_task(
        DELIVER_WEBHOOK_TASK,
        args=(dispatch.delivery_id, dispatch.token),
        queue=WEBHOOKS_QUEUE,
        retry=False,
    )
