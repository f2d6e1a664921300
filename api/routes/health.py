"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.problems import problem_response
from shared.errors import ServiceUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unavailable"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Redis and the audio store answer, and the event subscription is live."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(services.aioredis.ping(), timeout=2)
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unavailable: {exc}"
    try:
        await asyncio.wait_for(run_in_threadpool(services.store.check), timeout=3)
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"unavailable: {exc}"
    checks["events"] = "ok" if services.hub.subscribed else "not subscribed"
    if all(value == "ok" for value in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    failed = ", ".join(f"{name} {value}" for name, value in checks.items() if value != "ok")
    return problem_response(
        503,
        ServiceUnavailable.code,
        "Not ready",
        failed,
        instance="/readyz",
        headers={"Retry-After": "5"},
    )
