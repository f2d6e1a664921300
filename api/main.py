"""The gateway application: `create_app(settings)` and the lifespan that owns its clients."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI

from api.deps import Services
from api.hub import EventHub
from api.problems import install_problem_handlers
from api.queue import JobQueue
from api.routes import health, jobs
from shared.config import Settings
from shared.events import EventPublisher
from shared.jobs import JobRepository
from shared.storage import open_store
from shared.workers import WorkerRegistry

logger = logging.getLogger(__name__)


def _open_services(settings: Settings) -> Services:
    # Short timeouts: while Redis is down a request fails fast with 503 instead of hanging.
    limit = settings.redis_max_connections
    sync_client = redis.Redis(
        connection_pool=redis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=limit,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=30,
        )
    )
    async_client = aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=limit,
            timeout=5,
            socket_connect_timeout=2,
            health_check_interval=30,
        )
    )
    return Services(
        settings=settings,
        redis=sync_client,
        aioredis=async_client,
        jobs=JobRepository(sync_client, settings.job_retention_seconds),
        events=EventPublisher(sync_client, settings.job_retention_seconds),
        store=open_store(settings),
        queue=JobQueue(settings),
        hub=EventHub(async_client),
        workers=WorkerRegistry(sync_client),
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway for `settings`; clients are opened when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = _open_services(settings)
        await services.hub.start()
        app.state.services = services
        logger.info("gateway ready (model %s, store %s)", settings.model, settings.storage_url)
        try:
            yield
        finally:
            await services.hub.stop()
            services.queue.close()
            await services.aioredis.aclose()
            services.redis.close()

    app = FastAPI(
        title="audiochat",
        version="1.0",
        summary="Ask questions by voice: transcripts and answers streamed as they are made.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(jobs.router)
    return app
