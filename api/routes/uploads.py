"""`POST /v1/uploads` and the original Audio-Chat client's `POST /upload`: store a recording.

A job refers to it in `upload_ids` (or a history turn's `upload_id`), a chat message as
`voice:<id>`. Errors use OpenAI's error body, like the rest of the OpenAI-compatible surface.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import ServicesDep, TenantDep
from api.openai_errors import OpenAIRoute
from api.openai_schemas import UploadRead
from api.submission import IncomingAudio
from api.uploads import store_upload
from shared.errors import InvalidRequest, UnsupportedMediaType, UploadTooLarge
from shared.storage import unescape_filename
from shared.uploads import UploadNotFound, UploadRecord

router = APIRouter(tags=["uploads"], route_class=OpenAIRoute)

_FORM_OVERHEAD = 64 * 1024
_MAX_CLIENT_ID = 128
_FORM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "clientid": {"type": "string", "maxLength": _MAX_CLIENT_ID},
                    },
                }
            }
        },
    }
}


def _read(record: UploadRecord) -> UploadRead:
    return UploadRead(
        id=record.id,
        filename=unescape_filename(record.filename),
        bytes=record.bytes,
        seconds=record.seconds,
        created_at=int(record.created_at.timestamp()),
        expires_at=int(record.expires_at.timestamp()),
    )


async def _store(request: Request, services: ServicesDep, tenant: str) -> UploadRead:
    max_bytes = services.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + _FORM_OVERHEAD:
        raise UploadTooLarge(f"the upload is larger than {max_bytes} bytes")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("send multipart/form-data with a `file`")
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("`file` must be an audio file", field="file")
        client_id = form.get("clientid")
        if client_id is not None and (
            not isinstance(client_id, str) or len(client_id) > _MAX_CLIENT_ID
        ):
            raise InvalidRequest(
                f"`clientid` must be text of at most {_MAX_CLIENT_ID} characters",
                field="clientid",
            )
        audio = IncomingAudio(upload.file, upload.filename)
        record = await run_in_threadpool(store_upload, services, tenant, audio, client_id or None)
    return _read(record)


@router.post("/v1/uploads", status_code=201, response_model=UploadRead, openapi_extra=_FORM_BODY)
async def create_upload(request: Request, services: ServicesDep, tenant: TenantDep) -> JSONResponse:
    """Store a recording (`file`) for jobs and chat messages to refer to by id."""
    body = await _store(request, services, tenant)
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/uploads/{body.id}"},
    )


@router.post("/upload", response_model=UploadRead, openapi_extra=_FORM_BODY)
async def create_upload_original(
    request: Request, services: ServicesDep, tenant: TenantDep
) -> UploadRead:
    """The original Audio-Chat client's upload (`clientid`, `file`); chat with `voice:<id>`."""
    return await _store(request, services, tenant)


@router.get("/v1/uploads/{upload_id}", response_model=UploadRead)
async def get_upload(upload_id: str, services: ServicesDep, tenant: TenantDep) -> UploadRead:
    """A stored recording's metadata, until it expires."""
    record = await run_in_threadpool(services.uploads.get, upload_id, tenant)
    if record is None:
        raise UploadNotFound(f"no upload {upload_id} (it may have expired)")
    return _read(record)
