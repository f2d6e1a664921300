"""Metrics and logs on a real stack: the gateway's `/metrics`, a worker's metrics port, and
JSON log lines that name their job.

The stack here is this module's own (its own Redis database), so what its gateway counts is
only what these tests did. Its worker runs `GatedBackend`: the scripted backend, plus
`gate:KEY` questions that wait until the test pushes KEY in Redis, which keeps the worker busy
for exactly as long as a test needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from httpx_sse import connect_sse
from prometheus_client.parser import text_string_to_metric_families

from shared.config import Settings
from testbed.processes import RedisServer, free_port, wait_for
from tests.conftest import start_stack
from tests.fakes.backends import ScriptedBackend
from tests.support.stack import Stack
from worker.backends.base import AnswerRequest, GenerationStats


class GatedBackend(ScriptedBackend):
    """`gate:KEY` answers only once KEY has been pushed to Redis (at most 120 s later)."""

    def __init__(self, redis_url: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)

    @classmethod
    def load(cls, settings: Settings) -> GatedBackend:
        return cls(settings.redis_url)

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        command, _, key = request.question.partition(":")
        if command != "gate":
            yield from super().answer(request)
            return
        self._redis.blpop([key], timeout=120)
        yield "opened"
        yield GenerationStats(prompt_tokens=1, completion_tokens=1, finish_reason="stop")


class Metered:
    """The module's stack, and scrapes of its gateway and worker metrics."""

    def __init__(self, stack: Stack, worker_port: int) -> None:
        self.stack = stack
        self.worker_url = f"http://127.0.0.1:{worker_port}/metrics"

    def gateway(self) -> Samples:
        response = self.stack.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return Samples(response.text)

    def worker(self) -> Samples:
        return Samples(httpx.get(self.worker_url, timeout=5).text)


class Samples:
    """One scrape, parsed; `value(name, **labels)` is 0 for a series that is not there."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def labels(self, name: str) -> list[dict[str, str]]:
        return [s.labels for s in self.samples if s.name == name]


@pytest.fixture(scope="module")
def metered(workdir: Path, redis_server: RedisServer) -> Iterator[Metered]:
    worker_port = free_port()
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'metered-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_LOG_JSON": "true",
    }
    worker = {
        "AUDIOCHAT_BACKEND_CLASS": "tests.integration.test_metrics:GatedBackend",
        "AUDIOCHAT_WORKER_METRICS_PORT": str(worker_port),
    }
    stack = start_stack(
        workdir / "metered-stack", redis_server.url(12), env, {"worker-metered": worker}
    )
    yield Metered(stack, worker_port)
    stack.close()


def test_requests_are_counted_by_route_template_not_path(metered: Metered) -> None:
    job = metered.stack.submit_text("tokens:1")
    metered.stack.run(job)
    route = "/v1/jobs/{job_id}"
    before = metered.gateway()
    assert metered.stack.http.get(f"/v1/jobs/{job['id']}").status_code == 200
    assert metered.stack.http.get("/v1/jobs/" + "f" * 32).status_code == 404
    assert metered.stack.http.get("/no/such/page").status_code == 404
    after = metered.gateway()

    def delta(**labels: str) -> float:
        name = "audiochat_http_requests_total"
        return after.value(name, **labels) - before.value(name, **labels)

    assert delta(method="GET", route=route, status="200") == 1
    assert delta(method="GET", route=route, status="404") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    routes = {labels["route"] for labels in after.labels("audiochat_http_requests_total")}
    assert not any(job["id"] in r or "f" * 32 in r for r in routes)


def test_jobs_are_counted_and_timed_by_final_status(metered: Metered) -> None:
    before = metered.gateway()
    succeeded = metered.stack.run(metered.stack.submit_text("tokens:2"))
    failed = metered.stack.run(metered.stack.submit_text("fail:1"))
    assert (succeeded["status"], failed["status"]) == ("succeeded", "failed")

    def delta(scrape: Samples, name: str, **labels: str) -> float:
        return scrape.value(name, **labels) - before.value(name, **labels)

    def counted() -> bool:
        # The hub counts from its subscription, which may trail the replayed stream we read.
        scrape = metered.gateway()
        return (
            delta(scrape, "audiochat_jobs_finished_total", status="succeeded") == 1
            and delta(scrape, "audiochat_jobs_finished_total", status="failed") == 1
        )

    wait_for(counted, 10, "the gateway to count both jobs")
    after = metered.gateway()
    assert delta(after, "audiochat_jobs_submitted_total") == 2
    assert delta(after, "audiochat_job_time_to_first_event_seconds_count") == 2
    duration = "audiochat_job_duration_seconds_count"
    assert delta(after, duration, status="succeeded") == 1
    assert delta(after, duration, status="failed") == 1


def test_queue_depth_open_streams_and_workers_are_read_at_scrape(metered: Metered) -> None:
    stack = metered.stack
    client = stack.redis()
    busy = stack.submit_text("gate:metrics-gate")
    waiting = []
    try:
        # The job that holds the worker is running: its second event says so.
        assert [e.data for e in stack.events(busy["id"], limit=2)][1] == {"status": "answering"}
        waiting = [stack.submit_text("tokens:1"), stack.submit_text("tokens:1")]
        scrape = metered.gateway()
        assert scrape.value("audiochat_queue_depth", model="echo") == 2
        assert scrape.value("audiochat_queue_depth", model="embedded") == 0
        assert scrape.value("audiochat_workers", model="echo") == 1
        assert scrape.value("audiochat_redis_up") == 1

        with connect_sse(stack.http, "GET", f"/v1/jobs/{busy['id']}/events") as source:
            # Held, not dropped: closing the iterator would close the stream.
            events = source.iter_sse()
            next(events)  # the gateway has registered this stream
            wait_for(
                lambda: metered.gateway().value("audiochat_sse_clients") == 1,
                10,
                "one open stream to be counted",
            )
    finally:
        client.lpush("metrics-gate", "open")
    for job in [busy, *waiting]:
        assert stack.run(job)["status"] == "succeeded"
    assert metered.gateway().value("audiochat_queue_depth", model="echo") == 0


def test_worker_exports_stage_durations_throughput_failures_and_load_time(
    metered: Metered, shared_audio: Path
) -> None:
    before = metered.worker()
    spoken = metered.stack.submit_audio(shared_audio / "1272-128104-0000.flac", question="tokens:5")
    assert metered.stack.run(spoken)["status"] == "succeeded"
    assert metered.stack.run(metered.stack.submit_text("fail:2"))["status"] == "failed"
    after = metered.worker()

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    stage = "audiochat_worker_stage_duration_seconds_count"
    assert delta(stage, model="echo", stage="transcribe") == 1
    assert delta(stage, model="echo", stage="answer") == 1  # the failed answer is not a duration
    assert delta("audiochat_worker_completion_tokens_total", model="echo") == 5
    assert delta("audiochat_worker_tokens_per_second_count", model="echo") == 1
    assert delta("audiochat_worker_job_failures_total", model="echo", code="model-error") == 1
    assert after.labels("audiochat_worker_model_load_seconds") == [{"model": "echo"}]
    assert after.value("process_resident_memory_bytes") > 0
    # No CUDA in this worker: no GPU series rather than zeros.
    assert "gpu_memory" not in after.text


def test_json_logs_name_the_job(metered: Metered) -> None:
    job = metered.stack.run(metered.stack.submit_text("fail:1"))

    def lines(process_log: Path) -> list[dict[str, object]]:
        return [
            json.loads(line)
            for line in process_log.read_text().splitlines()
            if line.startswith("{")
        ]

    gateway = lines(metered.stack.gateway.process.log_path)
    worker = lines(metered.stack.workers[0].process.log_path)
    assert all({"time", "level", "logger", "message", "job_id"} <= set(e) for e in gateway)
    about_job = [e for e in gateway + worker if e["job_id"] == job["id"]]
    assert any(e["logger"] == "api.submission" for e in about_job)
    failure = next(e for e in about_job if e["level"] == "ERROR")
    assert failure["logger"] == "worker.pipeline"
    assert "RuntimeError: scripted failure" in str(failure["exception"])
