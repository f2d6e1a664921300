"""Waiting for a job's end on behalf of a request that answers only then (no polling).

The job's events are followed through the hub, so the wait ends the moment the worker
publishes `done`. If the client goes away first, the wait ends too and the job goes on: its
result stays readable at `/v1/jobs/{id}`. So does a job that has not ended within the wait's
limit (one stuck in a queue, say): the request ends with `job-not-finished`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from starlette.requests import Request

from api.hub import EventHub
from shared.errors import JobCanceled, JobNotFinished, ServiceUnavailable
from shared.schemas import EventName, JobEvent

logger = logging.getLogger(__name__)

TranscriptHook = Callable[[str], Awaitable[None]]


@dataclass
class JobOutcome:
    """What a job's events said by the time it ended."""

    status: str = "succeeded"
    transcript: str | None = None
    # The data of `answer.completed`: text, finish_reason, prompt_tokens, completion_tokens.
    answer: dict[str, Any] | None = None
    # `{code, message}` of a failed or canceled job.
    error: dict[str, str] | None = None


def apply_event(outcome: JobOutcome, event: EventName, data: dict[str, Any]) -> None:
    """Fold one event into what is known of the job's end."""
    if event is EventName.TRANSCRIPT_COMPLETED:
        outcome.transcript = str(data.get("text", ""))
    elif event is EventName.ANSWER_COMPLETED:
        outcome.answer = data
    elif event is EventName.ERROR:
        outcome.error = {"code": str(data.get("code")), "message": str(data.get("message"))}
    elif event is EventName.DONE:
        outcome.status = str(data.get("status", "succeeded"))
        if outcome.status == "canceled" and outcome.error is None:
            outcome.error = {"code": JobCanceled.code, "message": "the job was canceled"}


def not_finished(job_id: str, waited: float) -> JobNotFinished:
    """The error of a request that stopped waiting for its job."""
    return JobNotFinished(
        f"job {job_id} had not ended after {waited:g} s; it goes on: read it at /v1/jobs/{job_id}"
    )


async def follow_to_end(
    hub: EventHub, job_id: str, timeout: float, outcome: JobOutcome
) -> AsyncIterator[JobEvent]:
    """The job's events for a stream already under way, each folded into `outcome` before it
    is yielded. The stream can no longer change its status code, so losing Redis or waiting
    past `timeout` ends the events quietly with `outcome.error` set, for its last event."""
    try:
        async for event in hub.follow(job_id, timeout=timeout):
            apply_event(outcome, event.event, event.data)
            yield event
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        logger.warning("event stream lost: %s", exc, extra={"job_id": job_id})
        outcome.error = {"code": ServiceUnavailable.code, "message": "Redis is unavailable"}
    except TimeoutError:
        error = not_finished(job_id, timeout)
        outcome.error = {"code": error.code, "message": error.message}


async def _collect(
    hub: EventHub, job_id: str, on_transcript: TranscriptHook | None, timeout: float
) -> JobOutcome:
    outcome = JobOutcome()
    async for event in hub.follow(job_id, timeout=timeout):
        apply_event(outcome, event.event, event.data)
        if event.event is EventName.TRANSCRIPT_COMPLETED and on_transcript is not None:
            await on_transcript(outcome.transcript or "")
    return outcome


async def _client_gone(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect, whenever it comes.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def wait_for_end(
    request: Request,
    hub: EventHub,
    job_id: str,
    timeout: float,
    on_transcript: TranscriptHook | None = None,
) -> JobOutcome | None:
    """The job's outcome once it has ended; None if the client went away before that;
    JobNotFinished if it has not ended within `timeout` seconds."""
    collector = asyncio.ensure_future(_collect(hub, job_id, on_transcript, timeout))
    watcher = asyncio.ensure_future(_client_gone(request))
    try:
        await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (collector, watcher):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if collector.done() and not collector.cancelled():
        if isinstance(collector.exception(), TimeoutError):
            raise not_finished(job_id, timeout)
        return collector.result()
    logger.info(
        "the client went away before the job ended; the job goes on", extra={"job_id": job_id}
    )
    return None
