"""Multipart forms: reading one from a request, and declaring a request body in OpenAPI.

How large a form may be is not checked here: `api/request_body.py` refuses a body over its
path's limit, declared or counted, before a route reads it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request

from shared.errors import UnsupportedMediaType

MULTIPART = "multipart/form-data"
JSON = "application/json"


def sent_as(request: Request, media_type: str) -> bool:
    """Whether the request's body is of `media_type` (its parameters aside)."""
    return request.headers.get("content-type", "").startswith(media_type)


@asynccontextmanager
async def multipart_form(
    request: Request, *, max_files: int, max_fields: int, refusal: str
) -> AsyncIterator[FormData]:
    """The request's multipart form; its files are closed when the block ends, however it
    ends. Any other body is refused with 415 and `refusal`."""
    if not sent_as(request, MULTIPART):
        raise UnsupportedMediaType(refusal)
    async with request.form(max_files=max_files, max_fields=max_fields) as form:
        yield form


def object_schema(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON schema of an object with these properties."""
    schema: dict[str, Any] = {"type": "object"}
    if required:
        schema["required"] = list(required)
    schema["properties"] = properties
    return schema


def request_body(
    form: dict[str, Any] | None = None, json: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself: a required body, sent as a
    multipart form of the `form` schema, as JSON of the `json` schema, or either."""
    content: dict[str, Any] = {}
    if form is not None:
        content[MULTIPART] = {"schema": form}
    if json is not None:
        content[JSON] = {"schema": json}
    return {"requestBody": {"required": True, "content": content}}
