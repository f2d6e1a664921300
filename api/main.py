"""The gateway application: `create_app(settings)` and the lifespan that owns its clients."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.auth import Authenticator, authenticate
from api.deps import Services
from api.hub import EventHub
from api.idempotency import IdempotencyKeys
from api.maintenance import maintain
from api.metrics import GatewayMetrics, MetricsMiddleware
from api.metrics import router as metrics_router
from api.problems import install_problem_handlers
from api.queue import JobQueue
from api.redis_clients import open_redis
from api.request_body import RequestBodyLimits, body_limit
from api.routes import chat, health, jobs, models, transcriptions, uploads, web, webhooks
from shared.config import Settings
from shared.events import EventPublisher
from shared.jobs import JobRepository
from shared.quota import StorageQuota, Stored
from shared.retention import ObjectExpiry
from shared.storage import open_store
from shared.upload_records import UploadRepository
from shared.webhook_secrets import WebhookSecrets
from shared.workers import WorkerRegistry

logger = logging.getLogger(__name__)


def _open_services(settings: Settings) -> Services:
    sync_client, async_client = open_redis(settings)
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
        idempotency=IdempotencyKeys(
            sync_client, settings.job_retention_seconds, settings.submit_grace_seconds
        ),
        expiry=ObjectExpiry(sync_client, settings.job_retention_seconds),
        uploads=UploadRepository(sync_client, settings.job_retention_seconds),
        webhook_secrets=WebhookSecrets(
            sync_client, settings.webhooks.secret_rotation_grace_seconds
        ),
        quota=StorageQuota(
            sync_client,
            settings.job_retention_seconds,
            {
                Stored.RECORDS: settings.max_record_bytes_per_tenant,
                Stored.AUDIO: settings.max_audio_bytes_per_tenant,
            },
        ),
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway for `settings`; clients are opened when the app starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = _open_services(settings)
        metrics.bind(services.redis, services.hub, services.workers)
        services.hub.on_event = metrics.observe_event
        await services.hub.start()
        app.state.services = services
        housekeeping = asyncio.create_task(
            maintain(services, settings.maintenance_interval_seconds), name="maintenance"
        )
        logger.info("gateway ready (model %s, store %s)", settings.model, settings.storage_url)
        try:
            yield
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            await services.hub.stop()
            services.queue.close()
            await services.aioredis.aclose()
            services.redis.close()

    app = FastAPI(
        title="audiochat",
        version="1.0",
        summary="Ask questions by voice: transcripts and answers streamed as they are made.",
        lifespan=lifespan,
        # Every route is authenticated (when API keys are set) unless listed as public.
        dependencies=[Depends(authenticate)],
    )
    app.state.authenticator = Authenticator(settings)
    metrics = GatewayMetrics()
    app.state.metrics = metrics
    app.add_middleware(
        RequestBodyLimits,
        limit_for=functools.partial(body_limit, max_audio_bytes=settings.max_upload_bytes),
        idle_seconds=settings.request_body_idle_seconds,
        total_seconds=settings.request_body_seconds,
    )
    if settings.cors_origins:
        wildcard = "*" in settings.cors_origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # Credentials are never combined with "any origin".
            allow_credentials=not wildcard,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
        )
    # Added last, so it is outermost: requests the body limits or CORS refuse are counted too.
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics_router)
    app.include_router(jobs.router)
    app.include_router(webhooks.router)
    # OpenAI-compatible paths and uploads: errors in OpenAI's body (api/openai_errors.py).
    for openai_router in (chat.router, transcriptions.router, models.router, uploads.router):
        app.include_router(openai_router)
    web.install(app)
    return app
