"""Event log and job records on a real Redis."""

from __future__ import annotations

import json

from shared.events import EventPublisher, event_from_message, event_from_stream_entry
from shared.jobs import JobRepository, new_job_id
from shared.redis_keys import EVENTS_CHANNEL, job_events_key
from shared.schemas import EventName, JobStatus
from testbed.processes import RedisServer, wait_for
from tests.support.jobs import typed_job


def test_each_event_is_logged_and_published_with_the_same_id(redis_server: RedisServer) -> None:
    client = redis_server.client(5)
    publisher = EventPublisher(client, retention_seconds=600)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(EVENTS_CHANNEL)
    job_id = new_job_id()
    ids = [publisher.publish(job_id, EventName.ANSWER_DELTA, {"text": f"é{i}"}) for i in range(3)]
    assert ids == [1, 2, 3]
    live = []
    wait_for(
        lambda: bool(
            live.append(pubsub.get_message(timeout=0.1)) or len([m for m in live if m]) == 3
        ),
        5,
        "three messages",
    )
    published = [event_from_message(m["data"]) for m in live if m]
    assert [(j, e.id, e.data) for j, e in published] == [
        (job_id, i, {"text": f"é{i - 1}"}) for i in ids
    ]
    logged = [event_from_stream_entry(i, f) for i, f in client.xrange(job_events_key(job_id))]
    assert [(e.id, e.event, e.data) for e in logged] == [
        (e.id, e.event, e.data) for _, e in published
    ]
    # Replay after an id, as the gateway does for Last-Event-ID (an exclusive range).
    after = client.xrange(job_events_key(job_id), min="(1-0")
    assert [event_from_stream_entry(i, f).id for i, f in after] == [2, 3]
    assert 0 < client.ttl(job_events_key(job_id)) <= 600
    json.dumps([e.model_dump() for e in logged])


def test_a_finished_job_is_never_overwritten(redis_server: RedisServer) -> None:
    repo = JobRepository(redis_server.client(5), retention_seconds=600)
    job = typed_job()
    repo.create(job)
    assert repo.transition(job.id, JobStatus.ANSWERING)
    assert repo.transition(job.id, JobStatus.CANCELED)
    assert not repo.transition(job.id, JobStatus.SUCCEEDED, answer="late")
    stored = repo.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELED and stored.answer is None
    assert not repo.update(new_job_id(), answer="no such job")
    repo.delete(job.id)
    assert repo.get(job.id) is None
