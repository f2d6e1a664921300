"""OpenAI's error body on the OpenAI-compatible paths; the native API keeps problem+json.

Routers of those paths use `OpenAIRoute`, which renders whatever a route raises as
`{"error": {"message", "type", "code", "param"}}` with the status OpenAI would use, so SDKs
raise the exception they would raise against OpenAI (`BadRequestError`, `NotFoundError`, ...).
The `code` is audiochat's stable code, the same as in problem documents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import redis.exceptions
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from api.problems import field_errors
from shared.errors import (
    InvalidRequest,
    JobNotFinished,
    RedisFull,
    ServiceError,
    ServiceUnavailable,
    UnknownModel,
)

logger = logging.getLogger(__name__)

_HTTP_CODES = {404: "not-found", 405: "method-not-allowed"}
# Where OpenAI's clients call (chat, audio, models) and the uploads they refer to.
OPENAI_PATH_PREFIXES = ("/v1/chat/", "/v1/audio/", "/v1/models", "/v1/uploads", "/upload")


def is_openai_path(path: str) -> bool:
    """Whether errors on `path` use OpenAI's body rather than a problem document."""
    return path.startswith(OPENAI_PATH_PREFIXES)


def error_type(status: int) -> str:
    """OpenAI's error `type` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_status(error: type[ServiceError]) -> int:
    """The status OpenAI uses for this error: 404 for an unknown model, 400 for bad input."""
    if issubclass(error, UnknownModel):
        return 404
    return 400 if error.status == 422 else error.status


def _subclasses(cls: type[ServiceError]) -> Iterator[type[ServiceError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def status_for_code(code: str) -> int:
    """The OpenAI-path status of a job's error `code` (500 for a code no error class has)."""
    for cls in _subclasses(ServiceError):
        if cls.code == code:
            return openai_status(cls)
    return 500


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type(status), "code": code, "param": param}}


def openai_error(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, code, message, param), status_code=status, headers=headers
    )


def render_error(exc: Exception) -> JSONResponse:
    """Any exception a route raised, as an OpenAI error response."""
    if isinstance(exc, ServiceError):
        status = openai_status(type(exc))
        retry_after = getattr(exc, "retry_after", None) or (5 if status in (429, 503) else None)
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, JobNotFinished):
            # The job goes on: OpenAI's SDKs would otherwise send the request again and
            # start a second job beside it.
            headers["x-should-retry"] = "false"
        return openai_error(status, exc.code, exc.message, exc.field, headers or None)
    if isinstance(exc, RequestValidationError | ValidationError):
        errors = field_errors(exc.errors())
        message = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in errors)
        param = errors[0]["field"] if errors else None
        return openai_error(400, InvalidRequest.code, message or "the request is not valid", param)
    if isinstance(exc, HTTPException):
        code = _HTTP_CODES.get(exc.status_code, "http-error")
        extra = dict(exc.headers) if exc.headers else None
        return openai_error(exc.status_code, code, str(exc.detail), headers=extra)
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        logger.error("redis is full (maxmemory, noeviction): %s", exc)
        return openai_error(503, RedisFull.code, RedisFull.title, headers={"Retry-After": "30"})
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        logger.warning("redis unavailable: %s", exc)
        return openai_error(
            503, ServiceUnavailable.code, "Redis is unavailable", headers={"Retry-After": "5"}
        )
    logger.exception("unexpected error", exc_info=exc)
    return openai_error(500, ServiceError.code, "internal error")


class OpenAIRoute(APIRoute):
    """A route whose errors, validation errors included, use OpenAI's error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientDisconnect:
                raise  # nobody to answer (api/request_body.py notes it)
            except Exception as exc:
                return render_error(exc)

        return route
