"""The gateway's event hub in process, on a real Redis: what it does with messages it cannot
read, how it replays a log, and where a log ends."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.hub import REPLAY_PAGE, EventHub
from shared.events import DROPPED, EventPublisher
from shared.jobs import new_job_id
from shared.redis_keys import EVENTS_CHANNEL, job_events_key
from shared.schemas import EventName, JobEvent
from testbed.processes import RedisServer

DB = 15
# A newer worker's event (a rolling upgrade), and messages that are not events at all.
BAD_MESSAGES: list[bytes | str] = [
    b"not json",
    b"\xff\xfe\x00",
    "[1, 2, 3]",
    '{"job_id": "x"}',
    '{"job_id": "x", "id": "1", "event": "status", "data": {}}',
    '{"job_id": "x", "id": 1, "event": "status", "data": []}',
    "[" * 100_000 + "]" * 100_000,
]


def _run(
    redis_server: RedisServer, test: Callable[[EventHub, aioredis.Redis], Awaitable[None]]
) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(redis_server.url(DB))
        hub = EventHub(client)
        await hub.start()
        assert hub.subscribed
        try:
            await test(hub, client)
        finally:
            await hub.stop()
            await client.aclose()

    asyncio.run(main())


async def _collect(events: AsyncIterator[JobEvent], timeout: float = 20) -> list[JobEvent]:
    async def drain() -> list[JobEvent]:
        return [event async for event in events]

    return await asyncio.wait_for(drain(), timeout)


async def _registered(hub: EventHub, count: int) -> None:
    """Wait until `count` followers have registered with the hub."""
    while hub.client_count < count:
        await asyncio.sleep(0.01)


def test_messages_that_are_not_events_are_skipped_and_live_events_go_on(
    redis_server: RedisServer,
) -> None:
    publisher = EventPublisher(redis_server.client(DB), retention_seconds=60)
    job_id = new_job_id()

    async def test(hub: EventHub, client: aioredis.Redis) -> None:
        follower = asyncio.ensure_future(_collect(hub.follow(job_id)))
        await _registered(hub, 1)
        for message in BAD_MESSAGES:
            await client.publish(EVENTS_CHANNEL, message)
        publisher.publish(job_id, EventName.STATUS, {"status": "queued"})
        publisher.publish(job_id, EventName.DONE, {"status": "succeeded"})
        events = await follower
        assert [e.event for e in events] == [EventName.STATUS, EventName.DONE]
        assert hub.subscribed

    _run(redis_server, test)


def test_a_newer_workers_event_is_passed_over_live_and_in_the_log(
    redis_server: RedisServer,
) -> None:
    job_id = new_job_id()
    key = job_events_key(job_id)

    async def publish(client: aioredis.Redis, n: int, name: str, data: dict[str, Any]) -> None:
        """What the publish script does, for an event name this version does not know."""
        payload = json.dumps(data)
        await client.xadd(key, {"event": name, "data": payload}, id=f"{n}-0")
        message = {"job_id": job_id, "id": n, "event": name, "data": data}
        await client.publish(EVENTS_CHANNEL, json.dumps(message))

    async def test(hub: EventHub, client: aioredis.Redis) -> None:
        replayed: list[JobEvent] = []
        seen: list[tuple[str, JobEvent]] = []
        hub.on_event = lambda job, event: seen.append((job, event))
        live = asyncio.ensure_future(_collect(hub.follow(job_id)))
        await _registered(hub, 1)
        await publish(client, 1, "status", {"status": "answering"})
        await publish(client, 2, "answer.reasoning", {"text": "hmm"})
        await publish(client, 3, "answer.delta", {"text": "yes"})
        await publish(client, 4, "done", {"status": "succeeded"})
        events = await live
        replayed = await _collect(hub.follow(job_id))
        for got in (events, replayed):
            assert [(e.id, e.event) for e in got] == [
                (1, EventName.STATUS),
                (3, EventName.ANSWER_DELTA),
                (4, EventName.DONE),
            ]
        assert [e.id for _, e in seen] == [1, 3, 4]

    _run(redis_server, test)


def test_an_observer_that_raises_does_not_stop_the_relay(redis_server: RedisServer) -> None:
    publisher = EventPublisher(redis_server.client(DB), retention_seconds=60)
    job_id = new_job_id()

    def broken(job: str, event: JobEvent) -> None:
        raise RuntimeError("observer defect")

    async def test(hub: EventHub, client: aioredis.Redis) -> None:
        hub.on_event = broken
        follower = asyncio.ensure_future(_collect(hub.follow(job_id)))
        await _registered(hub, 1)
        publisher.publish(job_id, EventName.STATUS, {"status": "queued"})
        publisher.publish(job_id, EventName.DONE, {"status": "failed"})
        assert [e.id for e in await follower] == [1, 2]

    _run(redis_server, test)


class _HubWithADefect(EventHub):
    """A hub whose first dispatch fails as a defect would: the listener must survive it."""

    failed = False

    def dispatch(self, payload: bytes | str) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a defect in dispatch")
        super().dispatch(payload)


def test_the_listener_subscribes_again_after_a_defect(redis_server: RedisServer) -> None:
    publisher = EventPublisher(redis_server.client(DB), retention_seconds=60)
    first, second = new_job_id(), new_job_id()

    async def main() -> None:
        client = aioredis.Redis.from_url(redis_server.url(DB))
        hub = _HubWithADefect(client)
        await hub.start()
        try:
            publisher.publish(first, EventName.STATUS, {"status": "queued"})
            while not hub.failed:
                await asyncio.sleep(0.01)
            await asyncio.wait_for(_until(lambda: hub.subscribed), 10)
            follower = asyncio.ensure_future(_collect(hub.follow(second)))
            await _registered(hub, 1)
            publisher.publish(second, EventName.DONE, {"status": "succeeded"})
            assert [e.event for e in await follower] == [EventName.DONE]
        finally:
            await hub.stop()
            await client.aclose()

    asyncio.run(main())


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.01)


def test_replay_reads_the_log_a_page_at_a_time(redis_server: RedisServer) -> None:
    """A client that stops reading holds one page of a long log, not all of it."""
    publisher = EventPublisher(redis_server.client(DB), retention_seconds=60)
    job_id = new_job_id()
    delta = {"text": "x" * 20_000}
    count = REPLAY_PAGE * 8
    for _ in range(count):
        publisher.publish(job_id, EventName.ANSWER_DELTA, delta)
    publisher.publish(job_id, EventName.DONE, {"status": "succeeded"})
    log_bytes = count * len(delta["text"])

    async def test(hub: EventHub, client: aioredis.Redis) -> None:
        events = hub.follow(job_id)
        tracemalloc.start()
        try:
            first = await anext(events)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert first.id == 1
        # One page of 20 kB deltas, read and decoded, is about 3 MB; the whole log is 10 MB
        # before Redis's reply is even decoded.
        assert held < log_bytes / 3, (held, log_bytes)
        rest = await _collect(events)
        assert [e.id for e in rest] == list(range(2, count + 2))
        assert rest[-1].event is EventName.DONE

    _run(redis_server, test)


def test_the_log_ends_at_done_nothing_is_appended_after_it(redis_server: RedisServer) -> None:
    publisher = EventPublisher(redis_server.client(DB), retention_seconds=60)
    job_id = new_job_id()
    assert publisher.publish(job_id, EventName.ANSWER_DELTA, {"text": "a"}) == 1
    assert publisher.publish(job_id, EventName.DONE, {"status": "canceled"}) == 2
    # A stage still streaming when its job was canceled.
    assert publisher.publish(job_id, EventName.ANSWER_DELTA, {"text": "late"}) == DROPPED
    assert publisher.publish(job_id, EventName.DONE, {"status": "succeeded"}) == DROPPED
    assert redis_server.client(DB).xlen(job_events_key(job_id)) == 2

    async def test(hub: EventHub, client: aioredis.Redis) -> None:
        position = await hub.position(job_id)
        assert (position.last_id, position.ended) == (2, True)
        unknown = await hub.position(new_job_id())
        assert (unknown.last_id, unknown.ended) == (0, False)

    _run(redis_server, test)


@pytest.mark.parametrize("size", [1, REPLAY_PAGE, REPLAY_PAGE + 1])
def test_replay_after_an_id_sends_the_rest_across_page_boundaries(
    redis_server: RedisServer, size: int
) -> None:
    publisher = EventPublisher(redis_server.client(DB), retention_seconds=60)
    job_id = new_job_id()
    for i in range(size):
        publisher.publish(job_id, EventName.ANSWER_DELTA, {"text": str(i)})
    publisher.publish(job_id, EventName.DONE, {"status": "succeeded"})

    async def test(hub: EventHub, client: aioredis.Redis) -> None:
        for after in (0, 1, size):
            events = await _collect(hub.follow(job_id, after))
            assert [e.id for e in events] == list(range(after + 1, size + 2))

    _run(redis_server, test)
