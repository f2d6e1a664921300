"""`_EventStream` overrides a private method of sse-starlette's response: these tests fail if
the method goes, changes its signature, or is no longer what sends the events."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest
from sse_starlette import EventSourceResponse
from starlette.types import Message, Send

from api.routes.jobs import _EventStream


def test_the_overridden_method_is_still_the_base_class_s() -> None:
    base = vars(EventSourceResponse).get("_send_with_timeout")
    assert base is not None, "sse-starlette no longer has _send_with_timeout: the override is dead"
    assert inspect.iscoroutinefunction(base)
    assert list(inspect.signature(base).parameters) == ["self", "send", "message"]


class _CountingStream(_EventStream):
    def __init__(self, frames: AsyncIterator[bytes]) -> None:
        super().__init__(frames, ping=600)
        self.sends_through_override = 0

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        self.sends_through_override += 1
        await super()._send_with_timeout(send, message)


def test_every_event_is_sent_through_the_override() -> None:
    async def frames() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"id: {n}\ndata: {n}\n\n".encode()

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        await asyncio.sleep(3600)  # the client stays connected until the stream ends
        return {"type": "http.disconnect"}

    stream = _CountingStream(frames())
    scope = {"type": "http", "method": "GET", "path": "/v1/jobs/x/events", "headers": []}
    asyncio.run(asyncio.wait_for(stream(scope, receive, send), 10))
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]]
    assert len(bodies) == 3
    assert stream.sends_through_override >= 3


def test_a_failed_send_marks_the_stream_interrupted_as_the_base_method_does() -> None:
    async def frames() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"

    async def broken_send(message: Message) -> None:
        raise OSError("the client is gone")

    stream = _EventStream(frames())
    assert stream.send_timeout is None
    message: Message = {"type": "http.response.body", "body": b"x", "more_body": True}
    with pytest.raises(OSError):
        asyncio.run(stream._send_with_timeout(broken_send, message))
    assert stream._send_interrupted
