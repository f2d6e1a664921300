"""`POST /v1/chat/completions`: OpenAI's chat API, answered by an audiochat job."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import redis.exceptions
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.conversation import ChatJob, submit_chat
from api.deps import Services, ServicesDep, TenantDep
from api.forms import JSON, request_body, sent_as
from api.job_waits import JobOutcome, TranscriptHook, follow_to_end, wait_for_end
from api.openai_errors import OpenAIRoute, openai_error, status_for_code
from api.openai_schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    Usage,
    usage_of,
)
from api.openai_sse import data_event, done_event, error_event, openai_stream
from api.request_body import chat_body_limit
from shared.errors import UnsupportedMediaType, UploadTooLarge
from shared.schemas import EventName

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


async def read_chat_request(request: Request, max_audio_bytes: int) -> ChatCompletionRequest:
    """The chat request, its body refused with 413 as soon as it is larger than audio can make
    it; the raw body is let go as soon as it is parsed (the base64 audio in it can be tens of
    MB, and the parsed request holds that text once more)."""
    if not sent_as(request, JSON):
        raise UnsupportedMediaType("send the chat request as application/json")
    limit = chat_body_limit(max_audio_bytes)
    declared = request.headers.get("content-length", "")
    # One buffer of the declared size, filled in place: growing it would copy it as it grows.
    body = bytearray(int(declared)) if declared.isdigit() and int(declared) <= limit else None
    size = 0
    async for chunk in request.stream():
        if size + len(chunk) > limit:
            raise UploadTooLarge(f"the request body is larger than {limit} bytes")
        if body is None:
            body = bytearray()
        body[size : size + len(chunk)] = chunk
        size += len(chunk)
    if body is None:
        body = bytearray()
    del body[size:]
    return ChatCompletionRequest.model_validate_json(body)


def _transcript_hook(services: Services, tenant: str, submitted: ChatJob) -> TranscriptHook:
    """Remembers a `voice:<id>` recording's transcript on its upload, for later turns."""

    async def remember(text: str) -> None:
        if submitted.sole_upload_id is None:
            return
        try:
            await run_in_threadpool(
                services.uploads.set_transcript, submitted.sole_upload_id, tenant, text
            )
        except redis.exceptions.RedisError as exc:
            # Only later turns lose a little context; this answer is not affected.
            logger.warning(
                "keeping the transcript failed: %s", exc, extra={"job_id": submitted.job.id}
            )

    return remember


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    openapi_extra=request_body(json=ChatCompletionRequest.model_json_schema()),
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(request: Request, services: ServicesDep, tenant: TenantDep) -> Response:
    """OpenAI chat completion: text, `input_audio` parts, or `voice:<upload id>` messages."""
    chat = await read_chat_request(request, services.settings.max_upload_bytes)
    submitted = await run_in_threadpool(submit_chat, services, tenant, chat)
    hook = _transcript_hook(services, tenant, submitted)
    if chat.stream:
        include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
        return openai_stream(
            _chunks(services, submitted, hook, include_usage),
            services.settings.sse_keepalive_seconds,
        )
    outcome = await wait_for_end(
        request, services.hub, submitted.job.id, services.settings.max_wait_seconds, hook
    )
    if outcome is None:
        # Nobody reads this: the client closed the connection (nginx's 499).
        return Response(status_code=499)
    return _completion(submitted, outcome)


def _completion(submitted: ChatJob, outcome: JobOutcome) -> JSONResponse:
    job = submitted.job
    if outcome.error is not None or outcome.answer is None:
        error = outcome.error or {"code": "internal-error", "message": "the job ended unanswered"}
        return openai_error(status_for_code(error["code"]), error["code"], error["message"])
    body = ChatCompletion(
        id=f"chatcmpl-{job.id}",
        created=int(job.created_at.timestamp()),
        model=job.model,
        choices=[
            Choice(
                message=AssistantMessage(content=str(outcome.answer.get("text", ""))),
                finish_reason=str(outcome.answer.get("finish_reason") or "stop"),
            )
        ],
        usage=usage_of(outcome.answer),
        job_id=job.id,
        transcript=outcome.transcript,
    )
    return JSONResponse(body.model_dump(mode="json"))


def _chunk(
    submitted: ChatJob,
    delta: ChunkDelta | None,
    *,
    finish_reason: str | None = None,
    usage: Usage | None = None,
    transcript: str | None = None,
) -> ServerSentEvent:
    job = submitted.job
    chunk = ChatCompletionChunk(
        id=f"chatcmpl-{job.id}",
        created=int(job.created_at.timestamp()),
        model=job.model,
        choices=[] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish_reason)],
        usage=usage,
        job_id=job.id,
        transcript=transcript,
    )
    return data_event(chunk.model_dump_json(exclude_none=True))


async def _chunks(
    services: Services, submitted: ChatJob, hook: TranscriptHook, include_usage: bool
) -> AsyncIterator[ServerSentEvent]:
    """`chat.completion.chunk` events: the assistant role first, the finish reason last, then
    `[DONE]`; a failed job sends OpenAI's error object in place of the rest."""
    yield _chunk(submitted, ChunkDelta(role="assistant", content=""))
    outcome = JobOutcome()
    timeout = services.settings.max_wait_seconds
    async for event in follow_to_end(services.hub, submitted.job.id, timeout, outcome):
        if event.event is EventName.TRANSCRIPT_COMPLETED:
            await hook(outcome.transcript or "")
            yield _chunk(submitted, ChunkDelta(), transcript=outcome.transcript)
        elif event.event is EventName.ANSWER_DELTA:
            yield _chunk(submitted, ChunkDelta(content=str(event.data.get("text", ""))))
        elif event.event is EventName.ANSWER_COMPLETED:
            usage = usage_of(event.data)
            reason = str(event.data.get("finish_reason") or "stop")
            yield _chunk(
                submitted,
                ChunkDelta(),
                finish_reason=reason,
                usage=None if include_usage else usage,
            )
            if include_usage:
                yield _chunk(submitted, None, usage=usage)
    if outcome.error is not None:
        yield error_event(outcome.error)
    yield done_event()
