"""Webhook deliveries in Redis: their records, and the schedule of their attempts.

A delivery is made by the event publisher, in the same step as its event (`shared/events.py`):
a record in the job's `audiochat:job:{id}:webhooks` hash, and an entry in the schedule
`audiochat:webhooks:due`, scored by when its next attempt is due. The schedule, not a broker
message, is what keeps a delivery alive:
  * a webhook worker's dispatcher takes what is due, pushes each entry's time forward by a
    lease, hands it a new token and sends a task carrying that token;
  * the task that holds the current token makes one attempt and then either removes the entry
    (delivered, or given up) or puts it back at the time of the next attempt;
  * if that worker dies, nothing finishes the delivery: its lease runs out, it is due again,
    and the next dispatch gives it a new token, so a stale task that turns up later does nothing.
A delivery is therefore attempted at least once more after any crash, never by two workers at
once, and always under the same id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from shared.redis_keys import WEBHOOK_TOKENS_KEY, WEBHOOKS_DUE_KEY, job_deliveries_key
from shared.schemas import WebhookDelivery

# Take what is due, push it a lease ahead, and hand each a fresh token.
# ARGV: now, now + lease, how many at most. Returns [id, token, id, token, ...].
_DISPATCH_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  out[#out + 1] = id
  out[#out + 1] = redis.call('HINCRBY', KEYS[2], id, 1)
end
return out
"""

# Write the outcome of an attempt, if the caller's token is still the current one.
# KEYS: due, tokens, the job's deliveries. ARGV: id, token, record JSON, next time or ''.
_FINISH_SCRIPT = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('HSET', KEYS[3], ARGV[1], ARGV[3]) end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
end
return 1
"""


def job_of(delivery_id: str) -> str:
    """The job a delivery belongs to (its id is `msg_{job id}_{event}`)."""
    return delivery_id.split("_")[1]


@dataclass(frozen=True)
class Dispatch:
    """A delivery handed to a task, with the token that lets that task finish it."""

    delivery_id: str
    token: int


class WebhookDeliveries:
    """Reads deliveries, hands due ones out, and records how their attempts went."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._dispatch = client.register_script(_DISPATCH_SCRIPT)
        self._finish = client.register_script(_FINISH_SCRIPT)

    def for_job(self, job_id: str) -> list[WebhookDelivery]:
        """The job's deliveries, oldest event first."""
        raw: Any = self._redis.hvals(job_deliveries_key(job_id))
        records = [json.loads(value) for value in raw]
        records.sort(key=lambda record: record["event_id"])
        return [WebhookDelivery.model_validate(record) for record in records]

    def due(self, now: float, lease_seconds: float, limit: int = 100) -> list[Dispatch]:
        """Deliveries whose attempt is due, each leased for `lease_seconds` under a new token."""
        flat: Any = self._dispatch(
            keys=[WEBHOOKS_DUE_KEY, WEBHOOK_TOKENS_KEY], args=[now, now + lease_seconds, limit]
        )
        ids = [i.decode() if isinstance(i, bytes) else str(i) for i in flat[::2]]
        return [Dispatch(i, int(token)) for i, token in zip(ids, flat[1::2], strict=True)]

    def current(self, dispatch: Dispatch) -> dict[str, Any] | None:
        """The delivery's stored record if `dispatch` still holds it; None if the token is stale
        or the job (and so the record) has expired."""
        token = self._redis.hget(WEBHOOK_TOKENS_KEY, dispatch.delivery_id)
        if token is None or int(token) != dispatch.token:
            return None
        raw = self._redis.hget(
            job_deliveries_key(job_of(dispatch.delivery_id)), dispatch.delivery_id
        )
        return json.loads(raw) if raw is not None else None

    def finish(self, dispatch: Dispatch, record: dict[str, Any], next_at: float | None) -> bool:
        """Store the record after an attempt, and schedule the next at `next_at` (None: it is
        over). False if another dispatch has taken the delivery over meanwhile."""
        job_id = job_of(dispatch.delivery_id)
        keys = [WEBHOOKS_DUE_KEY, WEBHOOK_TOKENS_KEY, job_deliveries_key(job_id)]
        args: list[str | int] = [
            dispatch.delivery_id,
            dispatch.token,
            json.dumps(record, ensure_ascii=False),
            "" if next_at is None else repr(next_at),
        ]
        return bool(self._finish(keys=keys, args=args))

    def drop(self, delivery_id: str) -> None:
        """Forget a delivery whose job has expired."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(WEBHOOKS_DUE_KEY, delivery_id)
            pipe.hdel(WEBHOOK_TOKENS_KEY, delivery_id)
            pipe.execute()
