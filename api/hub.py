"""Live job events for SSE clients: one Redis subscription per gateway process, fanned out.

A client following a job registers an in-process queue first, then replays the job's event
log after its last seen id, then relays live events, skipping ids it has already sent. Because
the worker appends to the log and publishes in one atomic step, nothing falls between the
replay and the live feed. If the subscription breaks, or a client falls too far behind, its
queue gets a resync marker and it replays from the log again, so a gap is never left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import redis.asyncio as aioredis
import redis.exceptions
from sse_starlette import ServerSentEvent

from shared.events import (
    EVENTS_CHANNEL,
    event_from_message,
    event_from_stream_entry,
    job_events_key,
)
from shared.schemas import EventName, JobEvent

logger = logging.getLogger(__name__)

_RESYNC: Final = object()
_QUEUE_SIZE = 1024
_FRAME_CACHE_SIZE = 4096


class EventHub:
    """Owns the process's subscription to `audiochat:events` and the per-job client queues."""

    def __init__(
        self, client: aioredis.Redis, on_event: Callable[[str, JobEvent], None] | None = None
    ) -> None:
        self._redis = client
        # Called with every event of every job (metrics count jobs here); must not raise.
        self.on_event = on_event
        self._subscribers: dict[str, set[asyncio.Queue[object]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Each event encoded once as an SSE frame, however many clients follow its job.
        self._frames: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def frame(self, job_id: str, event: JobEvent) -> bytes:
        """The event as Server-Sent Events bytes, encoded once for all of its clients."""
        key = (job_id, event.id)
        encoded = self._frames.get(key)
        if encoded is None:
            encoded = ServerSentEvent(
                data=json.dumps(event.data, ensure_ascii=False),
                event=event.event.value,
                id=str(event.id),
            ).encode()
            self._frames[key] = encoded
            if len(self._frames) > _FRAME_CACHE_SIZE:
                self._frames.popitem(last=False)
        return encoded

    @property
    def client_count(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())

    async def start(self, timeout: float = 5.0) -> None:
        """Subscribe, and wait up to `timeout` for the subscription to be live.

        If Redis is down the gateway still starts (and `/readyz` says it is not ready); the
        listener keeps retrying in the background.
        """
        self._task = asyncio.create_task(self._listen(), name="event-hub")
        try:
            await asyncio.wait_for(self._subscribed.wait(), timeout=timeout)
        except TimeoutError:
            logger.warning("event subscription not live yet; retrying in the background")

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(EVENTS_CHANNEL)
                self._subscribed.set()
                # Clients that followed while we were not subscribed may have missed events.
                self._broadcast_resync()
                delay = 0.1
                async for message in pubsub.listen():
                    self._dispatch(message["data"])
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                logger.warning("event subscription lost (%s); retrying in %.1f s", exc, delay)
                self._subscribed.clear()
                # Events may be published while we are away: every client replays its log.
                self._broadcast_resync()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, payload: bytes | str) -> None:
        job_id, event = event_from_message(payload)
        if self.on_event is not None:
            self.on_event(job_id, event)
        queues = self._subscribers.get(job_id)
        if not queues:
            return
        for queue in queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A slow client: drop what it has queued and let it catch up from the log.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(_RESYNC)

    def _broadcast_resync(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(_RESYNC)

    async def _replay(self, job_id: str, after: int) -> list[JobEvent]:
        entries: Any = await self._redis.xrange(
            job_events_key(job_id), min=f"({after}-0" if after else "-"
        )
        return [event_from_stream_entry(entry_id, fields) for entry_id, fields in entries]

    async def follow(self, job_id: str, after: int = 0) -> AsyncIterator[JobEvent]:
        """A job's events with ids above `after`, in order, ending with `done`."""
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        self._subscribers[job_id].add(queue)
        last = after
        try:
            while True:
                for event in await self._replay(job_id, last):
                    yield event
                    last = event.id
                    if event.event is EventName.DONE:
                        return
                while True:
                    item = await queue.get()
                    if item is _RESYNC or not isinstance(item, JobEvent):
                        break
                    if item.id <= last:
                        continue  # already sent from the log
                    if item.id > last + 1:
                        break  # something was missed: fill the gap from the log
                    yield item
                    last = item.id
                    if item.event is EventName.DONE:
                        return
        finally:
            queues = self._subscribers.get(job_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[job_id]
