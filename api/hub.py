"""Live job events for SSE clients: one Redis subscription per gateway process, fanned out.

A client following a job registers an in-process queue first, then replays the job's event
log after its last seen id, then relays live events, skipping ids it has already sent. Because
the worker appends to the log and publishes in one atomic step, nothing falls between the
replay and the live feed. If the subscription breaks, or a client falls too far behind, its
queue gets a resync marker and it replays from the log again, so a gap is never left open.

Nothing a message says can stop the listener: a message that is not an event, or an event
this version does not know (a newer worker's, in a rolling upgrade), is skipped and logged.
The log is replayed a page at a time, so a client that does not read holds one page, not
the whole log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
import redis.exceptions
from sse_starlette import ServerSentEvent

from shared.events import (
    MalformedEvent,
    UnknownEvent,
    entry_number,
    event_from_message,
    event_from_stream_entry,
)
from shared.redis_keys import EVENTS_CHANNEL, job_events_key
from shared.schemas import EventName, JobEvent

logger = logging.getLogger(__name__)

_RESYNC: Final = object()
_QUEUE_SIZE = 1024
# Log entries read at once when replaying: what a client that stops reading holds.
REPLAY_PAGE = 64
# Encoded frames kept for reuse across clients, by count and by total size.
_FRAME_CACHE_SIZE = 4096
_FRAME_CACHE_BYTES = 16 * 1024 * 1024
# A stream of unreadable messages is reported once a minute, not once a message.
_COMPLAINT_INTERVAL = 60.0


@dataclass(frozen=True)
class _Skipped:
    """An event a follower cannot relay (unknown to this version) but must count as seen."""

    id: int


@dataclass(frozen=True)
class LogPosition:
    """Where a job's event log stands: its last id, and whether that event is `done`."""

    last_id: int
    ended: bool


class _Complaints:
    """Logs ignored messages at most once per interval per reason, with how many there were."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = defaultdict(int)
        self._logged: dict[str, float] = {}

    def note(self, reason: str, detail: str) -> None:
        self._counts[reason] += 1
        now = time.monotonic()
        if now - self._logged.get(reason, -_COMPLAINT_INTERVAL) < _COMPLAINT_INTERVAL:
            return
        count = self._counts.pop(reason)
        self._logged[reason] = now
        logger.warning("ignored %d event message(s): %s (%s)", count, reason, detail)


class EventHub:
    """Owns the process's subscription to `audiochat:events` and the per-job client queues."""

    def __init__(
        self, client: aioredis.Redis, on_event: Callable[[str, JobEvent], None] | None = None
    ) -> None:
        self._redis = client
        # Called with every event of every job (metrics count jobs here).
        self.on_event = on_event
        self._subscribers: dict[str, set[asyncio.Queue[object]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._complaints = _Complaints()
        # Each event encoded once as an SSE frame, however many clients follow its job.
        self._frames: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._frame_bytes = 0

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
            self._frame_bytes += len(encoded)
            while len(self._frames) > _FRAME_CACHE_SIZE or (
                self._frame_bytes > _FRAME_CACHE_BYTES and len(self._frames) > 1
            ):
                self._frame_bytes -= len(self._frames.popitem(last=False)[1])
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
                    self.dispatch(message["data"])
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                logger.warning("event subscription lost (%s); retrying in %.1f s", exc, delay)
            except Exception:
                # Not Redis going away: a defect. The subscription is renewed all the same, so
                # live events never stop for good; `/readyz` says not ready meanwhile.
                logger.exception("event listener failed; subscribing again in %.1f s", delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            self._subscribed.clear()
            # Events may be published while we are away: every client replays its log.
            self._broadcast_resync()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def dispatch(self, payload: bytes | str) -> None:
        """Hand one message from the channel to the followers of its job."""
        try:
            job_id, event = event_from_message(payload)
        except UnknownEvent as exc:
            self._complaints.note(f"unknown event {exc.name!r}", f"job {exc.job_id}")
            self._deliver(exc.job_id, _Skipped(exc.event_id))
            return
        except MalformedEvent as exc:
            self._complaints.note("not an event", str(exc))
            return
        if self.on_event is not None:
            try:
                self.on_event(job_id, event)
            except Exception:
                logger.exception("an event observer failed", extra={"job_id": job_id})
        self._deliver(job_id, event)

    def _deliver(self, job_id: str, item: object) -> None:
        for queue in self._subscribers.get(job_id, ()):
            try:
                queue.put_nowait(item)
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

    async def position(self, job_id: str) -> LogPosition:
        """The last id in the job's log and whether it is `done` (0, False: no log yet)."""
        entries: Any = await self._redis.xrevrange(job_events_key(job_id), count=1)
        if not entries:
            return LogPosition(0, ended=False)
        entry_id, fields = entries[0]
        last_id = entry_number(entry_id)
        name = fields.get(b"event", fields.get("event"))
        return LogPosition(last_id, ended=name in (b"done", "done"))

    async def _replay(self, job_id: str, after: int) -> AsyncIterator[JobEvent | _Skipped]:
        """The log after `after`, a page at a time; entries this version cannot read are
        passed over (as _Skipped when they carry an id)."""
        while True:
            entries: Any = await self._redis.xrange(
                job_events_key(job_id), min=f"({after}-0" if after else "-", count=REPLAY_PAGE
            )
            for entry_id, fields in entries:
                after = entry_number(entry_id)
                try:
                    yield event_from_stream_entry(entry_id, fields, job_id)
                except UnknownEvent as exc:
                    self._complaints.note(f"unknown event {exc.name!r}", f"job {job_id}")
                    yield _Skipped(exc.event_id)
                except MalformedEvent as exc:
                    self._complaints.note("unreadable log entry", str(exc))
                    yield _Skipped(after)
            if len(entries) < REPLAY_PAGE:
                return

    async def follow(
        self, job_id: str, after: int = 0, timeout: float | None = None
    ) -> AsyncIterator[JobEvent]:
        """A job's events with ids above `after`, in order, ending with `done`; TimeoutError
        if `timeout` seconds pass first while waiting for the next event."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        self._subscribers[job_id].add(queue)
        last = after
        try:
            while True:
                async for item in self._replay(job_id, last):
                    last = item.id
                    if isinstance(item, JobEvent):
                        yield item
                        if item.event is EventName.DONE:
                            return
                while True:
                    async with asyncio.timeout_at(deadline):
                        live = await queue.get()
                    if not isinstance(live, JobEvent | _Skipped):
                        break  # resync
                    if live.id <= last:
                        continue  # already sent from the log
                    if live.id > last + 1:
                        break  # something was missed: fill the gap from the log
                    last = live.id
                    if isinstance(live, JobEvent):
                        yield live
                        if live.event is EventName.DONE:
                            return
        finally:
            queues = self._subscribers.get(job_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[job_id]
