"""Starting a worker: load the model once, in the process that runs the tasks, then consume."""

from __future__ import annotations

import logging
import math
import os
import socket
import time

import redis
from redis.backoff import EqualJitterBackoff
from redis.retry import Retry

from shared.config import Settings
from shared.jobs import JobRepository, utcnow
from shared.running import RunningJobs
from shared.storage import open_store
from shared.tasks import queue_for_model
from shared.workers import WorkerInfo, WorkerRegistry
from worker.app import create_celery_app
from worker.backends import load_backend
from worker.gpu import memory_in_use
from worker.heartbeat import Heartbeat
from worker.metrics import MeteredEvents, WorkerMetrics
from worker.pipeline import JobPipeline
from worker.tasks import register_tasks
from worker.watchdog import Watchdog

logger = logging.getLogger(__name__)


def outage_retry(seconds: float) -> Retry:
    """A retry policy that keeps trying Redis for at least `seconds`: pauses grow from 50 ms
    to between 0.5 and 1 s, so a restart is ridden out instead of failing the running stage
    (redis-py's default gives up within a second). A command retried after its reply was lost
    may run twice; for an event that means a repeated delta, rare and visible, not a lost job."""
    return Retry(EqualJitterBackoff(cap=1.0, base=0.05), retries=4 + math.ceil(seconds / 0.5))


def build_pipeline(
    settings: Settings,
    client: redis.Redis,
    worker_name: str,
    metrics: WorkerMetrics | None = None,
) -> JobPipeline:
    """Connect to the store and load this worker's model."""
    metrics = metrics or WorkerMetrics(settings.model)
    started = time.perf_counter()
    backend = load_backend(settings)
    metrics.model_loaded(time.perf_counter() - started)
    return JobPipeline(
        backend=backend,
        jobs=JobRepository(client, settings.job_retention_seconds),
        events=MeteredEvents(client, settings.job_retention_seconds, metrics),
        store=open_store(settings),
        settings=settings,
        running=RunningJobs(client),
        worker_name=worker_name,
    )


def concurrency(backend: object, settings: Settings) -> int:
    """Stages the worker runs at once: what its backend's engine was sized to (by the setting,
    the backend's default and GPU memory), or the setting, or one."""
    sized = getattr(backend, "concurrency", None)
    return int(sized or settings.worker_concurrency or 1)


def run_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run a worker for `settings.model`: a pool of threads in the process that loaded the
    model, one per stage it may run at once."""
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=5,
        socket_timeout=30,
        health_check_interval=30,
        retry=outage_retry(settings.redis_outage_seconds),
    )
    metrics = WorkerMetrics(settings.model)
    if settings.worker_metrics_port:
        # Served before the model loads, so a scrape shows the worker is up while it loads.
        metrics.serve(settings.worker_metrics_host, settings.worker_metrics_port)
    name = f"{settings.model}-{os.getpid()}@{socket.gethostname()}"
    pipeline = build_pipeline(settings, client, name, metrics)
    engine = getattr(pipeline.backend, "engine", None)
    if engine is not None:
        metrics.watch_engine(engine)
    app = create_celery_app(settings)
    register_tasks(app, pipeline)
    queue = queue_for_model(settings.model)
    ttl = settings.worker_heartbeat_ttl_seconds
    device = getattr(pipeline.backend, "device", "cpu")
    threads = concurrency(pipeline.backend, settings)
    heartbeat = Heartbeat(
        WorkerRegistry(client, ttl_seconds=ttl),
        WorkerInfo(
            name=name,
            model=settings.model,
            queue=queue,
            device=device,
            # Measured once the model is loaded: what the model itself holds.
            memory_bytes=memory_in_use(device),
            concurrency=threads,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            started_at=utcnow(),
        ),
        interval=ttl / 3,
        current_jobs=pipeline.running_jobs,
    )
    # The heartbeat starts once the model is loaded: a live worker is one that can take jobs.
    heartbeat.start()
    watchdog = Watchdog(pipeline)
    watchdog.start()
    logger.info("worker %s consuming %s, %d stages at once", name, queue, threads)
    try:
        app.worker_main(
            [
                "worker",
                # Threads share the one model; with prefetch off (app.py) the worker reserves
                # a task only when a thread is free to start it.
                "--pool=threads",
                f"--concurrency={threads}",
                f"--queues={queue}",
                f"--hostname={name}",
                f"--loglevel={loglevel}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        watchdog.stop()
        heartbeat.stop()
        if engine is not None:
            engine.stop()
