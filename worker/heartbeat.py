"""A background thread that tells Redis, every few seconds, that this worker is alive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shared.workers import WorkerInfo, WorkerRegistry

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        registry: WorkerRegistry,
        info: WorkerInfo,
        interval: float = 5.0,
        current_jobs: Callable[[], list[str]] = list,
    ) -> None:
        self._registry = registry
        self.info = info
        self._current_jobs = current_jobs
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval)
        try:
            self._registry.remove(self.info.name)
        except Exception:
            logger.warning("could not remove the heartbeat of %s", self.info.name)

    def _beat(self) -> None:
        try:
            jobs = self._current_jobs()
            # `current_job` too, for a gateway from before concurrent stages (a rolling upgrade).
            update = {"current_jobs": jobs, "current_job": jobs[0] if jobs else None}
            self._registry.beat(self.info.model_copy(update=update))
        except Exception as exc:
            # Redis may be restarting; the next beat will try again.
            logger.warning("heartbeat failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._beat()
