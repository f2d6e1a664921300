"""A chat request with inline audio, read and decoded in process: how many copies of its body
it holds at once (tracemalloc counts every allocation, so this is exact, not timed)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tracemalloc

import pytest
from starlette.requests import Request
from starlette.types import Message

from api.conversation import split_messages
from api.routes.chat import read_chat_request

MB = 1024 * 1024


def _request(body: bytes, declare_length: bool) -> Request:
    pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def receive() -> Message:
        piece = pieces.pop(0) if pieces else b""
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    headers = [(b"content-type", b"application/json")]
    if declare_length:
        headers.append((b"content-length", str(len(body)).encode()))
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)


@pytest.mark.parametrize("declare_length", [True, False])
def test_a_chat_request_holds_at_most_two_copies_of_its_body(declare_length: bool) -> None:
    audio = base64.b64encode(os.urandom(4 * MB)).decode()
    part = {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}
    body = json.dumps({"model": "echo", "messages": [{"role": "user", "content": [part]}]})
    request = _request(body.encode(), declare_length)
    del audio, part

    async def read_and_decode() -> tuple[int, int]:
        tracemalloc.start()
        try:
            chat = await read_chat_request(request, max_audio_bytes=50 * MB)
            _, turn = split_messages(chat.messages, 50 * MB)
            stream = turn.audio[0].stream
            decoded = len(stream.read())
            del chat
            stream.close()
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert decoded == 4 * MB
        return held, peak

    held, peak = asyncio.run(read_and_decode())
    # The body as received and the parsed request's base64 text: two copies at most, then none.
    assert peak < 2.2 * len(body), (peak, len(body))
    assert held < 0.1 * len(body), (held, len(body))
