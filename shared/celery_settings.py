"""The Celery settings every process that sends audiochat's tasks agrees on.

The gateway sends each job's chain, a worker sends a chain's next stage, the benchmarks send
bare chains: all of them build their Celery app's settings from `producer_settings`, so a task
is sent the same way wherever it comes from. Plain settings, no Celery: `shared` never imports
it (the workers' own settings, `worker/app.py`, add what only consumers need).
"""

from __future__ import annotations

from typing import Any

from shared.config import Settings


def producer_settings(
    settings: Settings, fail_after_seconds: float | None = None
) -> dict[str, Any]:
    """Celery settings for sending tasks to the broker in `settings`.

    With `fail_after_seconds`, sending gives up after that long (connect and read timeouts, no
    retry) instead of waiting for a broker that does not answer: a request that sends a task
    then fails like any other Redis call of that request.
    """
    transport: dict[str, Any] = {"visibility_timeout": settings.broker_visibility_timeout}
    config: dict[str, Any] = {
        "broker_url": settings.redis_url,
        "broker_transport_options": transport,
        "task_serializer": "json",
        # Job state lives in audiochat's own records; Celery keeps no results.
        "task_ignore_result": True,
    }
    if fail_after_seconds is not None:
        transport["socket_timeout"] = fail_after_seconds
        transport["socket_connect_timeout"] = fail_after_seconds
        config["broker_connection_timeout"] = fail_after_seconds
        config["broker_connection_retry"] = False
    return config
