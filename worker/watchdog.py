"""The hard time limit: a stage that stops yielding is failed, and its worker process exits.

Soft limits are checked by the stage itself between pieces. A model stuck inside one call
(a hung kernel, a runaway decode) never gets there, and Celery cannot enforce time limits in
the `solo` pool, so this thread watches the clock: past the hard limit it fails the job with
code `timeout` and ends the process, which its supervisor (compose, systemd) restarts with a
fresh model. The task message is redelivered later and skipped, because the job has ended.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from shared.errors import StageTimeout
from worker.pipeline import JobPipeline

logger = logging.getLogger(__name__)

EXIT_CODE = 70


class Watchdog:
    def __init__(self, pipeline: JobPipeline, interval: float = 1.0) -> None:
        self._pipeline = pipeline
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            current = self._pipeline.current
            if current is None or time.monotonic() - current.started < current.hard_limit:
                continue
            logger.error(
                "%s ran past its hard limit of %g s; failing it and exiting",
                current.stage,
                current.hard_limit,
                extra={"job_id": current.job_id},
            )
            try:
                self._pipeline.fail_current(
                    StageTimeout(f"the {current.stage} stage ran past {current.hard_limit:g} s")
                )
            finally:
                logging.shutdown()
                os._exit(EXIT_CODE)
