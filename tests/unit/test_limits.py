"""The gateway's limits in process: request bodies (size, pauses, total time) driven through
the ASGI middleware, and the rate and capacity checks on a real Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive, Scope, Send

from api.limits import check_capacity, check_rate
from api.request_body import CHAT_PATH, FORM_OVERHEAD, RequestBodyLimits, body_limit
from shared.errors import QueueFull, ServiceError, TooManyActiveJobs, TooManyRequests
from shared.jobs import JobRepository
from shared.tasks import queue_for_model
from testbed.processes import RedisServer

DB = 11
MAX_AUDIO = 1000


async def _reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body; answers its size, or the status of the error reading it raised."""
    status, body = 200, b""
    try:
        body = await Request(scope, receive).body()
    except ServiceError as exc:
        status = exc.status
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def _call(
    receive: Receive,
    path: str = "/v1/jobs",
    headers: list[tuple[bytes, bytes]] | None = None,
    app: Callable[[Scope, Receive, Send], Any] = _reading_app,
    idle: float = 0.2,
    total: float = 1.0,
) -> list[Message]:
    middleware = RequestBodyLimits(
        app, lambda p: body_limit(p, MAX_AUDIO), idle_seconds=idle, total_seconds=total
    )
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers or []}
    asyncio.run(asyncio.wait_for(middleware(scope, receive, send), 10))
    return sent


def _chunks(*pieces: bytes, then_stall: bool = False, gap: float = 0.0) -> Receive:
    queue = list(pieces)

    async def receive() -> Message:
        if queue:
            await asyncio.sleep(gap)
            piece = queue.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(queue) or then_stall}
        await asyncio.Event().wait()  # a client that stopped sending, or never hung up
        raise AssertionError("unreachable")

    return receive


def _status(sent: list[Message]) -> int:
    return int(sent[0]["status"])


def test_a_body_within_the_limit_passes() -> None:
    sent = _call(_chunks(b"a" * 500, b"b" * 500))
    assert _status(sent) == 200 and sent[1]["body"] == b"1000"


def test_a_body_over_the_limit_is_refused_as_it_arrives() -> None:
    chunk = b"x" * (MAX_AUDIO + FORM_OVERHEAD)
    assert _status(_call(_chunks(chunk, b"x", then_stall=True))) == 413


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    length = str(MAX_AUDIO + FORM_OVERHEAD + 1).encode()
    sent = _call(_chunks(then_stall=True), headers=[(b"content-length", length)])
    assert _status(sent) == 413
    # The native API's problem document (OpenAI's paths get OpenAI's body).
    assert b"upload-too-large" in sent[1]["body"]


def test_chat_may_send_its_audio_in_base64() -> None:
    base64_sized = b"x" * (MAX_AUDIO * 4 // 3 + FORM_OVERHEAD)
    assert _status(_call(_chunks(base64_sized), path=CHAT_PATH)) == 200
    assert _status(_call(_chunks(base64_sized), path="/v1/uploads")) == 413
    too_big = str(len(base64_sized) + 1).encode()
    sent = _call(_chunks(), path=CHAT_PATH, headers=[(b"content-length", too_big)])
    assert _status(sent) == 413 and b'"error"' in sent[1]["body"]


def test_a_body_that_stops_arriving_is_408_after_the_pause_limit() -> None:
    assert _status(_call(_chunks(b"a", then_stall=True), idle=0.2, total=5)) == 408


def test_a_body_that_drips_in_is_408_at_the_total_limit() -> None:
    drip = [b"a"] * 100  # one byte every 0.05 s: never a pause, never done
    assert _status(_call(_chunks(*drip, gap=0.05), idle=0.2, total=0.5)) == 408


def test_after_the_body_the_wait_for_a_disconnect_has_no_limit() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive).body()
        # What a route waiting for its job does: the next message is the disconnect.
        assert (await receive())["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    messages = iter([{"type": "http.request", "body": b"q", "more_body": False}])

    async def receive() -> Message:
        message = next(messages, None)
        if message is None:
            await asyncio.sleep(0.5)  # well past the 0.2 s pause limit
            return {"type": "http.disconnect"}
        return message

    assert _status(_call(receive, app=app, idle=0.2, total=0.3)) == 204


def test_a_client_that_disconnects_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ClientDisconnect()

    with caplog.at_level(logging.INFO, logger="api.request_body"):
        assert _call(_chunks(b"a"), app=app) == []
    assert [r.getMessage() for r in caplog.records] == [
        "POST /v1/jobs: the client disconnected before its body arrived"
    ]
    assert caplog.records[0].exc_info is None


def test_the_rate_limit_counts_per_tenant_per_minute(redis_server: RedisServer) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(redis_server.url(DB))
        await client.flushdb()
        try:
            for _ in range(3):
                await check_rate(client, "t1", per_minute=3)
            with pytest.raises(TooManyRequests) as raised:
                await check_rate(client, "t1", per_minute=3)
            assert raised.value.retry_after is not None and 0 < raised.value.retry_after <= 60
            await check_rate(client, "t2", per_minute=3)  # another tenant's budget
            await check_rate(client, "t1", per_minute=0)  # 0: no limit
        finally:
            await client.aclose()

    asyncio.run(main())


def test_capacity_refuses_a_full_queue_and_a_tenant_at_its_cap(
    redis_server: RedisServer,
) -> None:
    client = redis_server.client(DB)
    client.flushdb()
    jobs = JobRepository(client, retention_seconds=60)
    check_capacity(client, jobs, "t1", "echo", max_active=1, max_queue_depth=2)
    client.rpush(queue_for_model("echo"), "a", "b")
    with pytest.raises(QueueFull):
        check_capacity(client, jobs, "t1", "echo", max_active=1, max_queue_depth=2)
    client.zadd("audiochat:tenant:t1:active-jobs", {"gone": time.time()})
    # A job whose record is gone does not count against the cap.
    check_capacity(client, jobs, "t1", "echo", max_active=1, max_queue_depth=3)
    client.hset("audiochat:job:live", "status", '"queued"')
    client.zadd("audiochat:tenant:t1:active-jobs", {"live": time.time()})
    with pytest.raises(TooManyActiveJobs):
        check_capacity(client, jobs, "t1", "echo", max_active=1, max_queue_depth=3)
