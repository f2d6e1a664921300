"""`POST /v1/audio/transcriptions`: OpenAI's transcription API, run as a transcribe-only job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from api.deps import Services, ServicesDep, TenantDep
from api.forms import multipart_form, object_schema, request_body
from api.job_waits import JobOutcome, follow_to_end, wait_for_end
from api.openai_errors import OpenAIRoute, openai_error, status_for_code
from api.openai_schemas import (
    DurationUsage,
    Transcription,
    TranscriptionForm,
    TranscriptionVerbose,
    VerboseSegment,
    VerboseWord,
)
from api.openai_sse import data_event, done_event, error_event, openai_stream
from api.submission import IncomingAudio, submit_job
from api.subtitles import cues, to_srt, to_vtt
from shared.errors import InvalidRequest, JobNotFound
from shared.schemas import EventName, JobCreate, JobRead, JobTask

router = APIRouter(prefix="/v1/audio", tags=["openai"], route_class=OpenAIRoute)

_TEXT_FIELDS = ("model", "language", "prompt", "temperature", "response_format", "stream")
_FORM = object_schema(
    {
        "file": {"type": "string", "format": "binary"},
        **TranscriptionForm.model_json_schema()["properties"],
    },
    required=["file", "model"],
)


def _read_form(form: FormData) -> tuple[TranscriptionForm, UploadFile]:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("`file` must be an audio file", field="file")
    fields: dict[str, Any] = {
        name: value for name in _TEXT_FIELDS if isinstance(value := form.get(name), str) and value
    }
    granularities = form.getlist("timestamp_granularities[]") + form.getlist(
        "timestamp_granularities"
    )
    fields["timestamp_granularities"] = granularities
    return TranscriptionForm.model_validate(fields), upload


@router.post(
    "/transcriptions",
    openapi_extra=request_body(form=_FORM),
    responses={
        200: {
            "content": {
                "application/json": {"schema": TranscriptionVerbose.model_json_schema()},
                "text/plain": {},
                "text/vtt": {},
                "text/event-stream": {},
            }
        }
    },
)
async def create_transcription(
    request: Request, services: ServicesDep, tenant: TenantDep
) -> Response:
    """Transcribe `file`: json, text, srt, vtt or verbose_json, or a stream of text deltas."""
    async with multipart_form(
        request, max_files=1, max_fields=32, refusal="send multipart/form-data with a `file`"
    ) as fields:
        form, upload = _read_form(fields)
        options = JobCreate(
            task=JobTask.TRANSCRIBE,
            model=form.model,
            language=form.language,
            transcription_prompt=form.prompt,
            temperature=form.temperature,
            word_timestamps="word" in form.timestamp_granularities,
        )
        audio = [IncomingAudio(upload.file, upload.filename)]
        job = await run_in_threadpool(submit_job, services, options, audio, tenant=tenant)
    if form.stream:
        return openai_stream(_deltas(services, job.id), services.settings.sse_keepalive_seconds)
    outcome = await wait_for_end(request, services.hub, job.id, services.settings.max_wait_seconds)
    if outcome is None:
        return Response(status_code=499)  # the client is gone; nobody reads this
    if outcome.error is not None:
        code = outcome.error["code"]
        return openai_error(status_for_code(code), code, outcome.error["message"])
    final = await run_in_threadpool(services.jobs.get, job.id)
    if final is None:
        raise JobNotFound(f"job {job.id} expired before its transcript was read")
    return _render(final, form)


def _render(job: JobRead, form: TranscriptionForm) -> Response:
    text = job.transcript or ""
    duration = round(sum(part.seconds for part in job.audio), 3)
    if form.response_format == "text":
        return PlainTextResponse(text)
    if form.response_format in ("srt", "vtt"):
        timed = cues(job.segments or [], duration)
        if form.response_format == "srt":
            return PlainTextResponse(to_srt(timed))
        return PlainTextResponse(to_vtt(timed), media_type="text/vtt")
    usage = DurationUsage(seconds=duration)
    if form.response_format == "json":
        body = Transcription(text=text, usage=usage, job_id=job.id)
        return JSONResponse(body.model_dump(mode="json"))
    segments = [
        VerboseSegment(
            id=index,
            seek=int(cue.start * 100),
            start=cue.start,
            end=cue.end,
            text=cue.text,
            temperature=job.temperature,
        )
        for index, cue in enumerate(cues(job.segments or [], duration))
    ]
    granularities = form.timestamp_granularities
    words = [VerboseWord(word=w.word, start=w.start, end=w.end) for w in job.words or []]
    verbose = TranscriptionVerbose(
        language=job.transcript_language or job.language or "unknown",
        duration=duration,
        text=text,
        segments=segments if "segment" in granularities or not granularities else None,
        words=words if "word" in granularities else None,
        usage=usage,
        job_id=job.id,
    )
    return JSONResponse(verbose.model_dump(mode="json", exclude_none=True))


async def _deltas(services: Services, job_id: str) -> AsyncIterator[ServerSentEvent]:
    """`transcript.text.delta` events, one `transcript.text.done`, then `[DONE]`; a failed job
    sends OpenAI's error object before `[DONE]`."""
    outcome = JobOutcome()
    timeout = services.settings.max_wait_seconds
    async for event in follow_to_end(services.hub, job_id, timeout, outcome):
        if event.event is EventName.TRANSCRIPT_DELTA:
            delta = str(event.data.get("text", ""))
            yield data_event({"type": "transcript.text.delta", "delta": delta})
        elif event.event is EventName.TRANSCRIPT_COMPLETED:
            yield data_event({"type": "transcript.text.done", "text": outcome.transcript or ""})
    if outcome.error is not None:
        yield error_event(outcome.error)
    yield done_event()
