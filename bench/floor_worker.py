"""The floor of the queue benchmark: a Celery worker whose two tasks do nothing but what
audiochat's stages must always do, append one event to a Redis Stream and publish it.

Same Celery configuration as an audiochat worker (`worker.app.celery_config`: late acks,
prefetch 1, pool solo, no gossip or mingle) and the same event script (`shared.events`), so the
difference between this chain and an `echo` job is what audiochat's own code adds.
Run: `AUDIOCHAT_REDIS_URL=… python -m bench.floor_worker`.
"""

from __future__ import annotations

from shared.config import Settings
from shared.events import EventPublisher
from shared.schemas import EventName
from shared.tasks import queue_for_model

FIRST_TASK = "bench.floor.first"
SECOND_TASK = "bench.floor.second"
FLOOR_MODEL = "bench-floor"


def main() -> None:
    import redis

    from worker.app import create_celery_app

    settings = Settings(model=FLOOR_MODEL)
    client = redis.Redis.from_url(settings.redis_url)
    events = EventPublisher(client, settings.job_retention_seconds)
    app = create_celery_app(settings)

    @app.task(name=FIRST_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def first(chain_id: str) -> None:
        events.publish(chain_id, EventName.STATUS, {"stage": 1})

    @app.task(name=SECOND_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
    def second(chain_id: str) -> None:
        events.publish(chain_id, EventName.STATUS, {"stage": 2})

    app.worker_main(
        [
            "worker",
            "--pool=solo",
            f"--queues={queue_for_model(FLOOR_MODEL)}",
            "--hostname=bench-floor@%h",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
