"""The dispatcher: a thread of each webhook worker that sends due deliveries to the queue.

Every `interval` it takes the deliveries whose attempt is due (`shared/deliveries.py` leases
each one and gives it a token) and sends one task per delivery. A task that is lost, or a worker
that dies during the attempt, costs one lease: the delivery is due again and sent again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from shared.deliveries import Dispatch, WebhookDeliveries
from shared.redis_keys import webhook_dispatcher_key

logger = logging.getLogger(__name__)


class Dispatcher:
    """Moves due deliveries onto the webhook queue until stopped."""

    def __init__(
        self,
        client: redis.Redis,
        deliveries: WebhookDeliveries,
        send: Callable[[Dispatch], None],
        *,
        lease_seconds: float,
        worker_name: str,
        interval: float = 0.2,
    ) -> None:
        self._redis = client
        self._deliveries = deliveries
        self._send = send
        self._lease = lease_seconds
        self._alive_key = webhook_dispatcher_key(worker_name)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def dispatch_due(self) -> int:
        """Send every delivery that is due now; returns how many were sent."""
        sent = 0
        for dispatch in self._deliveries.due(time.time(), self._lease):
            try:
                self._send(dispatch)
                sent += 1
            except Exception as exc:
                # Its lease brings it back once the broker answers again.
                logger.warning("could not queue webhook %s: %s", dispatch.delivery_id, exc)
        return sent

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.dispatch_due()
                self._redis.set(self._alive_key, str(time.time()), ex=15)
            except redis.RedisError as exc:
                logger.warning("webhook dispatcher: Redis unavailable (%s)", exc)
