"""OpenAI's Server-Sent Events framing: `data:` lines only, LF line ends, `data: [DONE]` last.

Clients written against OpenAI often split the stream on a blank line (`\\n\\n`) instead of
parsing SSE fully, so the framing copies OpenAI's byte for byte (sse-starlette uses CRLF by
default). Keep-alive comments (`: ping`) are ignored by SSE parsers and the OpenAI SDKs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from api.openai_errors import error_body, status_for_code

_SEP = "\n"


def data_event(payload: dict[str, Any] | str) -> ServerSentEvent:
    """One event whose data is `payload`, a JSON object or an already encoded string."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return ServerSentEvent(data=text, sep=_SEP)


def error_event(error: dict[str, str]) -> ServerSentEvent:
    """OpenAI's error object for a stream that cannot finish: `{code, message}` of the job."""
    code = error["code"]
    return data_event(error_body(status_for_code(code), code, error["message"]))


def done_event() -> ServerSentEvent:
    """The event that ends every OpenAI stream."""
    return ServerSentEvent(data="[DONE]", sep=_SEP)


def openai_stream(
    events: AsyncIterator[ServerSentEvent], keepalive_seconds: float
) -> EventSourceResponse:
    return EventSourceResponse(
        events,
        ping=keepalive_seconds,
        sep=_SEP,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
