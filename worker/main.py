"""Starting a worker: load the model once, in the process that runs the tasks, then consume."""

from __future__ import annotations

import logging
import os
import socket

import redis

from shared.config import Settings
from shared.events import EventPublisher
from shared.jobs import JobRepository
from shared.storage import open_store
from shared.tasks import queue_for_model
from worker.app import create_celery_app
from worker.backends import load_backend
from worker.pipeline import JobPipeline
from worker.tasks import register_tasks

logger = logging.getLogger(__name__)


def build_pipeline(settings: Settings) -> JobPipeline:
    """Connect to Redis and the store, and load this worker's model."""
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=5, health_check_interval=30
    )
    return JobPipeline(
        backend=load_backend(settings),
        jobs=JobRepository(client, settings.job_retention_seconds),
        events=EventPublisher(client, settings.job_retention_seconds),
        store=open_store(settings),
        settings=settings,
    )


def run_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run a worker for `settings.model`: pool `solo`, so tasks run where the model was loaded."""
    pipeline = build_pipeline(settings)
    app = create_celery_app(settings)
    register_tasks(app, pipeline)
    queue = queue_for_model(settings.model)
    logger.info("worker for model %s consuming %s", settings.model, queue)
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            f"--queues={queue}",
            f"--hostname={settings.model}-{os.getpid()}@{socket.gethostname()}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
