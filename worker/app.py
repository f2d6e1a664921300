"""The Celery app factory and the settings long-running model tasks need.

What a worker sends (a chain's next stage) goes out as the gateway's tasks do:
`shared.celery_settings.producer_settings`, which these settings extend.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.celery_settings import producer_settings
from shared.config import Settings
from shared.tasks import queue_for_model


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings of a worker: the producer's, and what consuming long tasks needs."""
    return {
        **producer_settings(settings),
        # A task is unacknowledged until it finishes, so a worker that dies mid-stage leaves it
        # on the broker to be delivered again after the visibility timeout.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Reserve a task only when a thread is free to run it: a busy worker never hides a
        # backlog from idle workers, or from an autoscaler reading the queue's length.
        "worker_disable_prefetch": True,
        "broker_connection_retry_on_startup": True,
        "accept_content": ["json"],
        "task_default_queue": queue_for_model(settings.model),
        "worker_hijack_root_logger": False,
        # Task events let Flower show tasks as they are received, started and finished.
        "worker_send_task_events": settings.celery_task_events,
        "task_send_sent_event": settings.celery_task_events,
    }


def create_celery_app(settings: Settings) -> Celery:
    """A Celery app bound to the broker in `settings` (no tasks registered)."""
    app = Celery("audiochat", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app
