"""`/v1/webhooks/secret`: the tenant's webhook signing secret, shown once when it is made."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, TenantDep
from shared.webhook_secrets import WebhookSecretInfo, WebhookSecretMissing

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("/secret", status_code=201, response_model=WebhookSecretInfo)
async def rotate_secret(services: ServicesDep, tenant: TenantDep) -> JSONResponse:
    """Make a new signing secret (the old one keeps signing for the grace period); shown once."""
    info = await run_in_threadpool(services.webhook_secrets.rotate, tenant)
    # Never cached anywhere on the way: this answer is the only copy the tenant gets.
    return JSONResponse(
        info.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.get("/secret", response_model=WebhookSecretInfo)
async def read_secret(services: ServicesDep, tenant: TenantDep) -> WebhookSecretInfo:
    """When the secret was made (and until when the previous one still signs); not the secret."""
    info = await run_in_threadpool(services.webhook_secrets.info, tenant)
    if info is None:
        raise WebhookSecretMissing("no webhook secret yet: POST /v1/webhooks/secret makes one")
    return info
