"""Every error the gateway returns is an RFC 9457 `application/problem+json` document."""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from shared.errors import InvalidRequest, RedisFull, ServiceError, ServiceUnavailable
from shared.schemas import Problem

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        title=title, status=status, detail=detail, code=code, instance=instance, errors=errors
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic errors as `{field, message}`, the field named by its dotted location."""
    out = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        out.append({"field": ".".join(location) or None, "message": error.get("msg", "")})
    return out


def validation_problem(
    exc: ValidationError | RequestValidationError, instance: str
) -> JSONResponse:
    errors = field_errors(exc.errors())
    fields = ", ".join(e["field"] for e in errors if e["field"])
    return problem_response(
        422,
        InvalidRequest.code,
        InvalidRequest.title,
        f"invalid fields: {fields}" if fields else "the request body is not valid",
        instance=instance,
        errors=errors,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render ServiceError, validation errors, HTTP errors and lost backends as problems."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        retry_after = exc.retry_after or (5 if exc.status in (429, 503) else None)
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
        return problem_response(
            exc.status,
            exc.code,
            exc.title,
            exc.message,
            instance=request.url.path,
            headers=headers,
            errors=errors,
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc, request.url.path)

    @app.exception_handler(ValidationError)
    async def body_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        return validation_problem(exc, request.url.path)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(
            exc.status_code,
            code,
            str(exc.detail),
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(redis.exceptions.OutOfMemoryError)
    async def redis_full(request: Request, exc: Exception) -> JSONResponse:
        logger.error("redis is full (maxmemory, noeviction): %s", exc)
        return problem_response(
            503,
            RedisFull.code,
            RedisFull.title,
            "Redis has reached its maxmemory and refuses writes; nothing was stored",
            instance=request.url.path,
            headers={"Retry-After": "30"},
        )

    @app.exception_handler(redis.exceptions.ConnectionError)
    @app.exception_handler(redis.exceptions.TimeoutError)
    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("redis unavailable: %s", exc)
        return problem_response(
            503,
            ServiceUnavailable.code,
            "Redis is unavailable",
            str(exc),
            instance=request.url.path,
            headers={"Retry-After": "5"},
        )
