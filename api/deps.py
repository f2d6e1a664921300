"""Clients created once in the lifespan, handed to routes through `...Dep` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
import redis.asyncio as aioredis
from fastapi import Depends, Request

# TenantDep is defined with authentication and re-exported: every `...Dep` alias is found here.
from api.auth import TenantDep
from api.hub import EventHub
from api.idempotency import IdempotencyKeys
from api.queue import JobQueue
from shared.config import Settings
from shared.events import EventPublisher
from shared.jobs import JobRepository
from shared.quota import StorageQuota
from shared.retention import ObjectExpiry
from shared.storage import AudioStore
from shared.upload_records import UploadRepository
from shared.webhook_secrets import WebhookSecrets
from shared.workers import WorkerRegistry


@dataclass
class Services:
    """Everything the routes use, owned by the app's lifespan."""

    settings: Settings
    redis: redis.Redis
    aioredis: aioredis.Redis
    jobs: JobRepository
    events: EventPublisher
    store: AudioStore
    queue: JobQueue
    hub: EventHub
    workers: WorkerRegistry
    idempotency: IdempotencyKeys
    expiry: ObjectExpiry
    uploads: UploadRepository
    webhook_secrets: WebhookSecrets
    quota: StorageQuota


# `async def` although they do no I/O: FastAPI would run a plain `def` dependency in its thread
# pool, one hop per dependency per request.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_jobs(services: ServicesDep) -> JobRepository:
    return services.jobs


async def get_hub(services: ServicesDep) -> EventHub:
    return services.hub


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobsDep = Annotated[JobRepository, Depends(get_jobs)]
HubDep = Annotated[EventHub, Depends(get_hub)]


__all__ = ["HubDep", "JobsDep", "Services", "ServicesDep", "SettingsDep", "TenantDep"]
