"""`/v1/jobs`: submit a job, read it, list jobs, follow its events over SSE."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.types import Message, Send

from api.auth import Authenticator
from api.deps import HubDep, JobsDep, ServicesDep, SettingsDep, TenantDep
from api.forms import JSON, multipart_form, object_schema, request_body, sent_as
from api.submission import IncomingAudio, submit_job
from shared.errors import InvalidRequest, JobFinished, JobNotFound
from shared.job_endings import publish_end
from shared.jobs import JobRepository, utcnow
from shared.redis_keys import job_key
from shared.schemas import JobCreate, JobEvent, JobLinks, JobRead, JobStatus
from shared.storage import unescape_filename

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_MAX_AUDIO_PARTS = 8
_JOB_ID = re.compile(r"[0-9a-f]{32}")
# Multipart fields that may repeat; the others are read once.
_LIST_FIELDS = frozenset({"audio", "upload_ids", "webhook_events_filter"})

_JOB_OPTIONS = {
    "question": {"type": "string"},
    "language": {"type": "string", "pattern": "^[a-z]{2,3}$"},
    "max_new_tokens": {"type": "integer", "minimum": 1},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "model": {"type": "string"},
    "history": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "question": {"type": "string"},
                "answer": {"type": "string"},
                "upload_id": {"type": "string"},
            },
            "required": ["question", "answer"],
        },
    },
    "upload_ids": {"type": "array", "items": {"type": "string"}},
    "word_timestamps": {"type": "boolean"},
    "webhook": {"type": "string", "format": "uri", "maxLength": 2048},
    "webhook_events_filter": {
        "type": "array",
        "items": {"type": "string", "enum": ["transcript.completed", "answer.completed", "done"]},
    },
}
_CREATE_BODY = request_body(
    form=object_schema(
        {
            **_JOB_OPTIONS,
            "audio": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "history": {"type": "string", "description": "JSON list of turns"},
        }
    ),
    json=object_schema(_JOB_OPTIONS, required=["question"]),
)


@asynccontextmanager
async def _job_request(request: Request) -> AsyncIterator[tuple[JobCreate, list[UploadFile]]]:
    """The job options and the audio files, from a multipart form or a JSON body; the form's
    files are closed when the block ends."""
    if sent_as(request, JSON):
        yield JobCreate.model_validate(_parse_json(await request.body(), "body")), []
        return
    async with multipart_form(
        request,
        max_files=_MAX_AUDIO_PARTS,
        max_fields=64,
        refusal="send multipart/form-data (with audio) or application/json",
    ) as form:
        audio = form.getlist("audio")
        if any(not isinstance(part, UploadFile) for part in audio):
            raise InvalidRequest("`audio` must be a file", field="audio")
        fields: dict[str, Any] = {
            k: v for k, v in form.multi_items() if k not in _LIST_FIELDS and v != ""
        }
        if "history" in fields:
            fields["history"] = _parse_json(str(fields["history"]), "history")
        for name in ("upload_ids", "webhook_events_filter"):
            if form.getlist(name):
                fields[name] = form.getlist(name)
        options = JobCreate.model_validate(fields)
        yield options, [p for p in audio if isinstance(p, UploadFile)]


def _parse_json(raw: bytes | str, field: str) -> Any:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"`{field}` is not valid JSON: {exc}", field=field) from exc
    except RecursionError:
        raise InvalidRequest(f"`{field}` is nested too deeply", field=field) from None
    if field == "body" and not isinstance(value, dict):
        raise InvalidRequest("the JSON body must be an object", field=field)
    return value


def _resource(request: Request, job: JobRead, tenant: str) -> JobRead:
    """The job with its links; with API keys on, the events link carries a job token."""
    events = f"/v1/jobs/{job.id}/events"
    authenticator: Authenticator = request.app.state.authenticator
    if authenticator.enabled:
        events += f"?token={authenticator.events_token(job.id, tenant)}"
    return job.model_copy(update={"links": JobLinks(self=f"/v1/jobs/{job.id}", events=events)})


@router.post(
    "",
    status_code=202,
    response_model=JobRead,
    openapi_extra=_CREATE_BODY,
    responses={202: {"headers": {"Location": {"schema": {"type": "string"}}}}},
)
async def create_job(
    request: Request,
    services: ServicesDep,
    tenant: TenantDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """Submit a spoken question (audio), a typed one (question), or a question about audio."""
    async with _job_request(request) as (options, uploads):
        audio = [IncomingAudio(upload.file, upload.filename) for upload in uploads]
        job = await run_in_threadpool(
            submit_job, services, options, audio, tenant=tenant, idempotency_key=idempotency_key
        )
    return JSONResponse(
        _resource(request, job, tenant).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


@router.get("", response_model=list[JobRead])
def list_jobs(
    request: Request,
    jobs: JobsDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[JobRead]:
    """Your most recent jobs, newest first."""
    return [_resource(request, job, tenant) for job in jobs.list_recent(tenant, limit)]


def _get_or_404(jobs: JobRepository, job_id: str, tenant: str) -> JobRead:
    job = jobs.get(job_id, tenant) if _JOB_ID.fullmatch(job_id) else None
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job


@router.get("/{job_id}", response_model=JobRead)
def get_job(request: Request, job_id: str, jobs: JobsDep, tenant: TenantDep) -> JobRead:
    """A job's status, transcript, answer, error and timings."""
    return _resource(request, _get_or_404(jobs, job_id, tenant), tenant)


@router.post(
    "/{job_id}/cancel",
    response_model=JobRead,
    responses={409: {"description": "the job has already ended"}},
)
def cancel_job(request: Request, job_id: str, services: ServicesDep, tenant: TenantDep) -> JobRead:
    """Cancel a job: a queued one leaves the queue, a running one stops between tokens."""
    job = _get_or_404(services.jobs, job_id, tenant)
    if job.status.is_terminal or not services.jobs.transition(
        job_id, JobStatus.CANCELED, finished_at=utcnow()
    ):
        raise JobFinished(f"job {job_id} has already ended")
    # The worker sees the status between tokens and stops; these are the job's last events.
    publish_end(services.events, job_id, JobStatus.CANCELED)
    services.queue.remove_queued(services.redis, job)
    return _resource(request, _get_or_404(services.jobs, job_id, tenant), tenant)


@router.get(
    "/{job_id}/audio",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def job_audio(
    job_id: str,
    services: ServicesDep,
    tenant: TenantDep,
    part: Annotated[int, Query(ge=0, le=7)] = 0,
) -> FileResponse:
    """The audio of a job as it was uploaded (`part` picks one of several)."""
    job = _get_or_404(services.jobs, job_id, tenant)
    if part >= len(job.audio):
        raise JobNotFound(f"job {job_id} has no audio part {part}")
    folder = tempfile.mkdtemp(prefix="audiochat-audio-")
    path = Path(folder) / "audio"
    try:
        services.store.download(job.audio[part].key, path)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=unescape_filename(job.audio[part].filename) or "audio",
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


class _EventStream(EventSourceResponse):
    """sse-starlette's response, minus a cancel scope per write when no send timeout is set.

    sse-starlette wraps every message in `anyio.move_on_after(send_timeout)`, even for `None`.
    With thousands of clients each event is thousands of writes; skipping the scope took the
    fan-out bench's p50 at 1,000 clients from 47 to 30 ms. The method is private, so
    pyproject.toml pins sse-starlette below its next minor version, and
    tests/unit/test_event_stream.py fails if the method goes or is no longer called.
    """

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self.send_timeout is not None:
            await super()._send_with_timeout(send, message)
            return
        try:
            await send(message)
        except BaseException:
            # As the base method does: a send that never returned leaves the transport in an
            # unknown state, and sse-starlette then attempts no closing send at shutdown.
            self._send_interrupted = True
            raise


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {"content": {"text/event-stream": {}}},
        204: {"description": "the job has ended and `Last-Event-ID` is its last event"},
    },
)
async def job_events(
    job_id: str,
    services: ServicesDep,
    hub: HubDep,
    settings: SettingsDep,
    tenant: TenantDep,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
    last_event_id_header: Annotated[int | None, Header(alias="Last-Event-ID", ge=0)] = None,
    token: Annotated[str | None, Query(description="job-scoped token from `links.events`")] = None,
) -> Response:
    """Server-Sent Events of a job, from after `Last-Event-ID` (header or query) to `done`."""
    owner = (
        await services.aioredis.hget(job_key(job_id), "tenant")
        if _JOB_ID.fullmatch(job_id)
        else None
    )
    if owner is None or json.loads(owner) != tenant:
        raise JobNotFound(f"no job {job_id}")
    after = last_event_id_header if last_event_id_header is not None else last_event_id or 0
    if after:
        position = await hub.position(job_id)
        if after > position.last_id:
            raise InvalidRequest(
                f"Last-Event-ID {after} is past the job's last event ({position.last_id})",
                field="Last-Event-ID",
            )
        if position.ended and after == position.last_id:
            # Everything was sent. 204 is what tells an EventSource to stop reconnecting.
            return Response(status_code=204)

    async def stream() -> AsyncIterator[bytes]:
        event: JobEvent
        async for event in hub.follow(job_id, after):
            yield hub.frame(job_id, event)

    return _EventStream(
        stream(),
        ping=settings.sse_keepalive_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
