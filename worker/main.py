"""Starting a worker: load the model once, in the process that runs the tasks, then consume."""

from __future__ import annotations

import logging
import os
import socket

import redis

from shared.config import Settings
from shared.events import EventPublisher
from shared.jobs import JobRepository, utcnow
from shared.storage import open_store
from shared.tasks import queue_for_model
from shared.workers import WorkerInfo, WorkerRegistry
from worker.app import create_celery_app
from worker.backends import load_backend
from worker.heartbeat import Heartbeat
from worker.pipeline import JobPipeline
from worker.tasks import register_tasks

logger = logging.getLogger(__name__)


def build_pipeline(settings: Settings, client: redis.Redis) -> JobPipeline:
    """Connect to the store and load this worker's model."""
    return JobPipeline(
        backend=load_backend(settings),
        jobs=JobRepository(client, settings.job_retention_seconds),
        events=EventPublisher(client, settings.job_retention_seconds),
        store=open_store(settings),
        settings=settings,
    )


def run_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run a worker for `settings.model`: pool `solo`, so tasks run where the model was loaded."""
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
    )
    pipeline = build_pipeline(settings, client)
    app = create_celery_app(settings)
    register_tasks(app, pipeline)
    queue = queue_for_model(settings.model)
    name = f"{settings.model}-{os.getpid()}@{socket.gethostname()}"
    heartbeat = Heartbeat(
        WorkerRegistry(client),
        WorkerInfo(
            name=name,
            model=settings.model,
            queue=queue,
            device=getattr(pipeline.backend, "device", "cpu"),
            pid=os.getpid(),
            hostname=socket.gethostname(),
            started_at=utcnow(),
        ),
    )
    # The heartbeat starts once the model is loaded: a live worker is one that can take jobs.
    heartbeat.start()
    logger.info("worker %s consuming %s", name, queue)
    try:
        app.worker_main(
            [
                "worker",
                "--pool=solo",
                f"--queues={queue}",
                f"--hostname={name}",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        heartbeat.stop()
