"""The hard time limit: a stage past it fails its job, and a stage that then will not end takes
its worker process down with it.

Soft limits are checked by each stage itself, between pieces; a stage reading from the batch
engine gets a piece (empty if need be) every tenth of a second, so it always gets there. A
stage stuck inside one call (a storage read that never returns, a hung kernel) does not, and
Celery enforces no time limits in a thread pool, so this thread watches the clock. Past a
stage's hard limit it fails that job, and only that job, with code `timeout`. If the stage has
still not ended `GRACE_SECONDS` later, the process is wedged: it exits, its supervisor (compose,
systemd) restarts it with a fresh model, and the other stages it was running are delivered
again (their claims go stale with its heartbeat) and run from the start.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from shared.errors import StageTimeout
from worker.pipeline import JobPipeline, RunningStage

logger = logging.getLogger(__name__)

EXIT_CODE = 70
GRACE_SECONDS = 5.0


class Watchdog:
    def __init__(
        self, pipeline: JobPipeline, interval: float = 1.0, grace: float = GRACE_SECONDS
    ) -> None:
        self._pipeline = pipeline
        self._interval = interval
        self._grace = grace
        # Stages failed for running over, and when.
        self._overdue: dict[RunningStage, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        """Fail the stages past their hard limit; exit if one failed earlier is still here."""
        running = {stage: None for stage in self._pipeline.running.copy().values()}
        self._overdue = {s: t for s, t in self._overdue.items() if s in running}
        for stage in running:
            failed_at = self._overdue.get(stage)
            if failed_at is not None:
                if now - failed_at >= self._grace:
                    self._exit(stage)
                continue
            if now - stage.started < stage.hard_limit:
                continue
            logger.error(
                "%s ran past its hard limit of %g s; failing it",
                stage.stage,
                stage.hard_limit,
                extra={"job_id": stage.job_id},
            )
            error = StageTimeout(f"the {stage.stage} stage ran past {stage.hard_limit:g} s")
            if self._pipeline.fail_overdue(stage, error):
                self._overdue[stage] = now

    def _exit(self, stage: RunningStage) -> None:
        logger.error(
            "%s did not end %g s after it was failed; the worker is wedged and exits",
            stage.stage,
            self._grace,
            extra={"job_id": stage.job_id},
        )
        logging.shutdown()
        os._exit(EXIT_CODE)
