"""`/v1/jobs`: submit a job, read it, list jobs, follow its events over SSE."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.deps import HubDep, JobsDep, ServicesDep, SettingsDep
from api.submission import submit_job
from shared.errors import InvalidRequest, JobNotFound, UnsupportedMediaType, UploadTooLarge
from shared.events import job_key
from shared.jobs import JobRepository
from shared.schemas import JobCreate, JobEvent, JobRead

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_JOB_OPTIONS = {
    "question": {"type": "string"},
    "language": {"type": "string", "pattern": "^[a-z]{2,3}$"},
    "max_new_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "model": {"type": "string"},
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"audio": {"type": "string", "format": "binary"}, **_JOB_OPTIONS},
                }
            },
            "application/json": {
                "schema": {"type": "object", "properties": _JOB_OPTIONS, "required": ["question"]}
            },
        },
    }
}


async def _read_request(request: Request, max_bytes: int) -> tuple[JobCreate, UploadFile | None]:
    """The job options and the audio file, from a multipart form or a JSON body."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + 64 * 1024:
        raise UploadTooLarge(f"the upload is larger than {max_bytes} bytes")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidRequest("the JSON body must be an object")
        return JobCreate.model_validate(body), None
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=16)
        audio = form.get("audio")
        fields = {k: v for k, v in form.items() if k != "audio" and v != ""}
        options = JobCreate.model_validate(fields)
        if isinstance(audio, str) and audio:
            raise InvalidRequest("`audio` must be a file")
        return options, audio if isinstance(audio, UploadFile) else None
    raise UnsupportedMediaType("send multipart/form-data (with audio) or application/json")


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    openapi_extra=_CREATE_BODY,
    responses={202: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
async def create_job(request: Request, services: ServicesDep) -> JSONResponse:
    """Submit a spoken question (audio), a typed one (question), or a question about audio."""
    options, upload = await _read_request(request, services.settings.max_upload_bytes)
    try:
        job = await run_in_threadpool(
            submit_job,
            services,
            options,
            upload.file if upload else None,
            upload.filename if upload else None,
        )
    finally:
        if upload is not None:
            await upload.close()
    return JSONResponse(
        job.model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"}
    )


@router.get("", response_model=list[JobRead])
def list_jobs(jobs: JobsDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[JobRead]:
    """The most recent jobs, newest first."""
    return jobs.list_recent(limit)


def _get_or_404(jobs: JobRepository, job_id: str) -> JobRead:
    job = jobs.get(job_id) if len(job_id) <= 64 else None
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job


@router.get("/{job_id}", response_model=JobRead)
def get_job(job_id: str, jobs: JobsDep) -> JobRead:
    """A job's status, transcript, answer, error and timings."""
    return _get_or_404(jobs, job_id)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def job_events(
    job_id: str,
    services: ServicesDep,
    hub: HubDep,
    settings: SettingsDep,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
    last_event_id_header: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
) -> EventSourceResponse:
    """Server-Sent Events of a job, from after `Last-Event-ID` (header or query) to `done`."""
    if len(job_id) > 64 or not await services.aioredis.exists(job_key(job_id)):
        raise JobNotFound(f"no job {job_id}")
    after = last_event_id_header if last_event_id_header is not None else last_event_id or 0

    async def stream() -> AsyncIterator[ServerSentEvent]:
        event: JobEvent
        async for event in hub.follow(job_id, after):
            yield ServerSentEvent(
                data=json.dumps(event.data, ensure_ascii=False),
                event=event.event.value,
                id=str(event.id),
            )

    return EventSourceResponse(
        stream(),
        ping=settings.sse_keepalive_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
