"""Limits on how a request body arrives: how large it may be, and how slowly.

Sizes are counted as the bytes arrive, so a body over its limit is refused with 413 before the
rest of it is read, whatever the client claimed in Content-Length. A body that stops arriving
for `idle_seconds`, or takes longer than `total_seconds` in all, ends with 408: a vanished or
dripping client does not hold a connection and a spooled upload forever. (Headers are the
proxy's to time out: uvicorn has no setting for it; see docs/operations.md.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.openai_errors import is_openai_path, openai_error
from api.problems import problem_response
from shared.errors import RequestTimeout, ServiceError, UploadTooLarge

logger = logging.getLogger(__name__)

# Room for multipart boundaries and form fields around the audio itself.
FORM_OVERHEAD = 64 * 1024
CHAT_PATH = "/v1/chat/completions"


def chat_body_limit(max_audio_bytes: int) -> int:
    """The largest chat request: one audio file in base64 (a third larger), and the rest."""
    return max_audio_bytes * 4 // 3 + FORM_OVERHEAD


def body_limit(path: str, max_audio_bytes: int) -> int:
    """The largest body a request to `path` may send."""
    if path == CHAT_PATH:
        return chat_body_limit(max_audio_bytes)
    return max_audio_bytes + FORM_OVERHEAD


def error_response(path: str, error: ServiceError) -> Response:
    """`error` in the body the path's clients expect: OpenAI's error, or a problem document."""
    if is_openai_path(path):
        return openai_error(error.status, error.code, error.message)
    return problem_response(error.status, error.code, error.title, error.message, instance=path)


class RequestBodyLimits:
    """ASGI middleware: refuses bodies that are too large (413) or arrive too slowly (408)."""

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[str], int],
        idle_seconds: float,
        total_seconds: float,
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.limit_for(path)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                # Refused before a byte of the body is read.
                error = UploadTooLarge(f"the request body is larger than {limit} bytes")
                await error_response(path, error)(scope, receive, send)
                return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_seconds
        received = 0
        complete = False

        async def guarded_receive() -> Message:
            nonlocal received, complete
            if complete:
                # The body is in; what comes now is the disconnect, whenever it comes.
                return await receive()
            timeout_at = min(deadline, loop.time() + self.idle_seconds)
            try:
                async with asyncio.timeout_at(timeout_at):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive in time (at most {self.idle_seconds:g} s "
                    f"between pieces, {self.total_seconds:g} s in all)"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    raise UploadTooLarge(f"the request body is larger than {limit} bytes")
            return message

        try:
            await self.app(scope, guarded_receive, send)
        except ClientDisconnect:
            # The client went away mid-request: nothing to answer, nothing worth a traceback.
            logger.info(
                "%s %s: the client disconnected before its body arrived", scope["method"], path
            )
