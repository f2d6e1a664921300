"""`POST /v1/uploads` and the original Audio-Chat client's `POST /upload`: store a recording.

A job refers to it in `upload_ids` (or a history turn's `upload_id`), a chat message as
`voice:<id>`. `POST /v1/uploads` with a JSON body instead hands out a presigned form for the
client to send the file to the S3 store itself (api/direct_uploads.py). Errors use OpenAI's
error body, like the rest of the OpenAI-compatible surface.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import ServicesDep, TenantDep
from api.direct_uploads import create_direct_upload
from api.forms import JSON, multipart_form, object_schema, request_body, sent_as
from api.openai_errors import OpenAIRoute
from api.openai_schemas import DirectUploadCreate, PresignedForm, UploadRead
from api.submission import IncomingAudio
from api.upload_intake import store_upload
from shared.errors import InvalidRequest
from shared.storage import unescape_filename
from shared.upload_records import UploadNotFound, UploadRecord

router = APIRouter(tags=["uploads"], route_class=OpenAIRoute)

_MAX_CLIENT_ID = 128
_FORM = object_schema(
    {
        "file": {"type": "string", "format": "binary"},
        "clientid": {"type": "string", "maxLength": _MAX_CLIENT_ID},
    },
    required=["file"],
)


def _read(record: UploadRecord, form: PresignedForm | None = None) -> UploadRead:
    return UploadRead(
        id=record.id,
        status=record.status,
        upload=form,
        filename=unescape_filename(record.filename),
        bytes=record.bytes,
        seconds=record.seconds,
        created_at=int(record.created_at.timestamp()),
        expires_at=int(record.expires_at.timestamp()),
    )


async def _store(request: Request, services: ServicesDep, tenant: str) -> UploadRead:
    async with multipart_form(
        request, max_files=1, max_fields=8, refusal="send multipart/form-data with a `file`"
    ) as form:
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


async def _presign(request: Request, services: ServicesDep, tenant: str) -> UploadRead:
    options = DirectUploadCreate.model_validate_json(await request.body())
    record, form = await run_in_threadpool(
        create_direct_upload, services, tenant, options.filename, options.bytes
    )
    expires = int(record.created_at.timestamp()) + services.settings.direct_upload_expires_seconds
    presigned = PresignedForm(
        url=str(form["url"]),
        fields=dict(form["fields"]),
        max_bytes=options.bytes or services.settings.max_upload_bytes,
        expires_at=expires,
    )
    return _read(record, presigned)


@router.post(
    "/v1/uploads",
    status_code=201,
    response_model=UploadRead,
    openapi_extra=request_body(form=_FORM, json=DirectUploadCreate.model_json_schema()),
)
async def create_upload(request: Request, services: ServicesDep, tenant: TenantDep) -> JSONResponse:
    """Store a recording (`file`), or, with JSON, get a presigned form to send it to S3."""
    if sent_as(request, JSON):
        body = await _presign(request, services, tenant)
    else:
        body = await _store(request, services, tenant)
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/uploads/{body.id}"},
    )


@router.post("/upload", response_model=UploadRead, openapi_extra=request_body(form=_FORM))
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
