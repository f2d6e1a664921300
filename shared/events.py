"""Job events on Redis: publishing them, and reading them back from a log or the channel.

A job's events go two ways at once, atomically, by one Lua script:
  * appended to the job's Redis Stream `audiochat:job:{id}:events` (entry id `{n}-0`), a log
    that lets a client replay what it missed and that expires with the job;
  * published on the single channel `audiochat:events`, which each gateway process subscribes
    to once and fans out to its SSE clients.
`n` counts up from 1 within the job, so the SSE `id:` is the same number in both.
If the job has a webhook that asks for the event, the same script records a delivery of it and
schedules it at once (`shared/deliveries.py`): an event and its delivery exist together or not
at all, so no crash between the two can lose a delivery.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from shared.redis_keys import (
    EVENTS_CHANNEL,
    WEBHOOKS_DUE_KEY,
    job_deliveries_key,
    job_events_key,
    job_key,
    job_sequence_key,
)
from shared.schemas import EventName, JobEvent

# Appends and publishes one event, unless the job's log already ends with `done`: a stage
# that is still streaming when its job is canceled must not add deltas after the end, where
# a client that stops at `done` would never see them and a replay would show them out of place.
# Returns the event's id, or 0 when it was dropped.
_PUBLISH_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if last and last[2][2] == 'done' then return 0 end
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('XADD', KEYS[2], n .. '-0', 'event', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], '{"job_id":"' .. ARGV[1] .. '","id":' .. n
  .. ',"event":"' .. ARGV[2] .. '","data":' .. ARGV[3] .. '}')
local hook = redis.call('HGET', KEYS[3], 'webhook')
if not hook then return n end
for _, wanted in ipairs(cjson.decode(hook)['events']) do
  if wanted == ARGV[2] then
    local id = 'msg_' .. ARGV[1] .. '_' .. (string.gsub(ARGV[2], '[.]', '_'))
    local t = redis.call('TIME')
    local now = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
    local record = '{"id":"' .. id .. '","event":"' .. ARGV[2] .. '","event_id":' .. n
      .. ',"status":"pending","created_at":' .. now .. ',"attempts":[],"data":' .. ARGV[3] .. '}'
    if redis.call('HSETNX', KEYS[4], id, record) == 1 then
      redis.call('EXPIRE', KEYS[4], ARGV[4])
      redis.call('ZADD', KEYS[5], now, id)
    end
  end
end
return n
"""

DROPPED = 0


class EventPublisher:
    """Appends events to a job's log and publishes them live (used by workers and the gateway)."""

    def __init__(self, client: redis.Redis, retention_seconds: int) -> None:
        self._retention = retention_seconds
        self._script = client.register_script(_PUBLISH_SCRIPT)

    def publish(self, job_id: str, event: EventName, data: dict[str, Any]) -> int:
        """Publish one event and return its id within the job; DROPPED (0) if the job's log
        has already ended with `done`."""
        payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        keys = [
            job_sequence_key(job_id),
            job_events_key(job_id),
            job_key(job_id),
            job_deliveries_key(job_id),
            WEBHOOKS_DUE_KEY,
        ]
        args = [job_id, event.value, payload, self._retention, EVENTS_CHANNEL]
        return int(self._script(keys=keys, args=args))


class MalformedEvent(ValueError):
    """A message or log entry that is not an event: never relayed, never fatal."""


class UnknownEvent(MalformedEvent):
    """A well-formed event whose name this version does not know (a newer worker's)."""

    def __init__(self, job_id: str, event_id: int, name: str) -> None:
        super().__init__(f"unknown event {name!r}")
        self.job_id = job_id
        self.event_id = event_id
        self.name = name


def _event(job_id: object, event_id: object, name: object, data: object) -> JobEvent:
    if not isinstance(job_id, str) or type(event_id) is not int or event_id < 1:
        raise MalformedEvent(f"bad job id or event id: {job_id!r}, {event_id!r}")
    if not isinstance(data, dict):
        raise MalformedEvent(f"event data is not an object: {type(data).__name__}")
    try:
        known = EventName(str(name))
    except ValueError:
        raise UnknownEvent(job_id, event_id, str(name)[:64]) from None
    return JobEvent(id=event_id, event=known, data=data)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def entry_number(entry_id: str | bytes) -> int:
    """The event id of a log entry id (`{n}-0` -> n)."""
    return int(_text(entry_id).split("-", 1)[0])


def event_from_stream_entry(
    entry_id: str | bytes, fields: dict[Any, Any], job_id: str = ""
) -> JobEvent:
    """Build an event from one `XRANGE` entry (`{n}-0`, {event, data}); MalformedEvent (or
    UnknownEvent) if it is not one this version can read."""
    try:
        event_id = entry_number(entry_id)
        decoded = {_text(k): _text(v) for k, v in fields.items()}
        name, data = decoded["event"], json.loads(decoded["data"])
    except (ValueError, KeyError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedEvent(f"unreadable log entry: {exc!r}"[:200]) from None
    return _event(job_id, event_id, name, data)


def event_from_message(payload: str | bytes) -> tuple[str, JobEvent]:
    """Parse a message from `audiochat:events` into (job id, event); MalformedEvent (or
    UnknownEvent) if it is not one this version can read."""
    try:
        message = json.loads(payload)
        job_id, event_id = message["job_id"], message["id"]
        name, data = message["event"], message["data"]
    except (ValueError, TypeError, KeyError, RecursionError) as exc:
        raise MalformedEvent(f"unreadable message: {exc!r}"[:200]) from None
    return job_id, _event(job_id, event_id, name, data)
