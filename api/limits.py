"""Limits that keep an overloaded or abused gateway honest: body size, request rate, caps.

The body limit counts bytes as they arrive, so an upload over the limit is refused with 413
before the rest of it is read, whatever the client claimed in Content-Length.
"""

from __future__ import annotations

import time

import redis
import redis.asyncio as aioredis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response
from shared.errors import QueueFull, TooManyActiveJobs, TooManyRequests, UploadTooLarge
from shared.events import rate_window_key
from shared.jobs import JobRepository
from shared.tasks import queue_for_model

# Room for multipart boundaries and form fields around the audio itself.
_FORM_OVERHEAD = 64 * 1024


class BodySizeLimit:
    """ASGI middleware: a request body larger than `max_bytes` fails with 413 as it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes + _FORM_OVERHEAD

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                # Refused before a byte of the body is read.
                error = UploadTooLarge(f"the request body is larger than {self.max_bytes} bytes")
                response = problem_response(
                    error.status, error.code, error.title, error.message, instance=scope["path"]
                )
                await response(scope, receive, send)
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLarge(f"the request body is larger than {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)


async def check_rate(client: aioredis.Redis, tenant: str, per_minute: int) -> None:
    """Count one request against the tenant's budget for this minute; 429 when over it."""
    if per_minute <= 0:
        return
    now = time.time()
    window = int(now // 60)
    key = rate_window_key(tenant, window)
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int((await pipe.execute())[0])
    if count > per_minute:
        retry_after = max(1, int(60 - now % 60))
        raise TooManyRequests(
            f"more than {per_minute} requests this minute", retry_after=retry_after
        )


def check_capacity(
    client: redis.Redis,
    jobs: JobRepository,
    tenant: str,
    model: str,
    max_active: int,
    max_queue_depth: int,
) -> None:
    """Refuse a new job when the tenant has too many running, or the model's queue is full."""
    if max_active > 0 and jobs.active_count(tenant) >= max_active:
        raise TooManyActiveJobs(f"{max_active} jobs of this key have not ended yet", retry_after=5)
    depth = int(client.llen(queue_for_model(model)))
    if depth >= max_queue_depth:
        raise QueueFull(f"{depth} jobs are waiting for model {model!r}", retry_after=10)
