"""Clients created once in the lifespan, handed to routes through `...Dep` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import redis
import redis.asyncio as aioredis
from fastapi import Depends, Request

from api.hub import EventHub
from api.queue import JobQueue
from shared.config import Settings
from shared.events import EventPublisher
from shared.jobs import JobRepository
from shared.storage import AudioStore
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


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_jobs(services: ServicesDep) -> JobRepository:
    return services.jobs


def get_hub(services: ServicesDep) -> EventHub:
    return services.hub


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobsDep = Annotated[JobRepository, Depends(get_jobs)]
HubDep = Annotated[EventHub, Depends(get_hub)]


def get_tenant(request: Request) -> str:
    """The tenant the request acts for (API keys map to tenants; one tenant without keys)."""
    tenant: str = getattr(request.state, "tenant", "default")
    return tenant


TenantDep = Annotated[str, Depends(get_tenant)]
