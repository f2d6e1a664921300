"""The gateway's Prometheus metrics, and `GET /metrics` that serves them.

Requests are counted by a middleware, labelled by route template (`/v1/jobs/{job_id}`), never
by raw path, so the number of series stays fixed. Jobs are counted from the event hub, which
sees every event of every job on its one subscription: every gateway process therefore counts
every job of the deployment, so aggregate these counters across gateways with `max`, not
`sum`. Queue depth, workers and open event streams are read when Prometheus scrapes.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.schemas import EventName, JobEvent, JobStatus
from shared.tasks import KNOWN_MODELS, queue_for_model

if TYPE_CHECKING:
    from api.hub import EventHub
    from shared.workers import WorkerRegistry

logger = logging.getLogger(__name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Jobs whose start the gateway remembers, to time them; beyond this the oldest are forgotten
# (a job that never ends, e.g. one that expired while queued, must not grow memory forever).
_MAX_TRACKED_JOBS = 100_000
# Seconds: from sub-second echo jobs to long recordings queued behind others.
_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)

router = APIRouter(tags=["health"])


@dataclass
class _JobTiming:
    submitted: float
    first_event_seen: bool = False


class GatewayMetrics:
    """The gateway's metrics, in a registry of its own (so each app instance has its own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "audiochat_http_requests",
            "HTTP requests, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "audiochat_http_request_duration_seconds",
            "Time to complete an HTTP response (for event streams: how long the stream was open).",
            ["method", "route"],
            registry=self.registry,
        )
        self.jobs_submitted = Counter(
            "audiochat_jobs_submitted", "Jobs created (first event seen).", registry=self.registry
        )
        self.jobs_finished = Counter(
            "audiochat_jobs_finished",
            "Jobs that ended, by final status.",
            ["status"],
            registry=self.registry,
        )
        self.time_to_first_event = Histogram(
            "audiochat_job_time_to_first_event_seconds",
            "From submission to a job's next event (normally a worker taking it: time in queue).",
            buckets=_JOB_BUCKETS,
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "audiochat_job_duration_seconds",
            "From a job's submission to its end, by final status.",
            ["status"],
            buckets=_JOB_BUCKETS,
            registry=self.registry,
        )
        self._jobs: OrderedDict[str, _JobTiming] = OrderedDict()
        self._live: _LiveStateCollector | None = None

    def bind(self, client: redis.Redis, hub: EventHub, workers: WorkerRegistry) -> None:
        """Add what is read at scrape time; called when the app's clients are opened."""
        if self._live is not None:
            self.registry.unregister(self._live)  # the app was started again
        self._live = _LiveStateCollector(client, hub, workers)
        self.registry.register(self._live)

    def observe_event(self, job_id: str, event: JobEvent) -> None:
        """Count and time jobs from their events (the hub calls this for every event)."""
        try:
            self._observe(job_id, event, time.monotonic())
        except Exception:
            # Metrics must never break the event relay that calls this.
            logger.exception("counting an event failed", extra={"job_id": job_id})

    def _observe(self, job_id: str, event: JobEvent, now: float) -> None:
        if event.id == 1 and event.event is EventName.STATUS:
            self.jobs_submitted.inc()
            self._jobs[job_id] = _JobTiming(submitted=now)
            if len(self._jobs) > _MAX_TRACKED_JOBS:
                self._jobs.popitem(last=False)
            return
        timing = self._jobs.get(job_id)
        if timing is not None and not timing.first_event_seen:
            timing.first_event_seen = True
            self.time_to_first_event.observe(now - timing.submitted)
        if event.event is EventName.DONE:
            status = _final_status(event)
            self.jobs_finished.labels(status).inc()
            if timing is not None:
                self.job_seconds.labels(status).observe(now - timing.submitted)
                del self._jobs[job_id]


def _final_status(event: JobEvent) -> str:
    status = str(event.data.get("status", ""))
    # Only known statuses become label values, so a bad event cannot add series.
    return status if status in {s.value for s in JobStatus} else "unknown"


class _LiveStateCollector(Collector):
    """Queue depth per model, live workers per model and open event streams, read at scrape."""

    def __init__(self, client: redis.Redis, hub: EventHub, workers: WorkerRegistry) -> None:
        self._redis = client
        self._hub = hub
        self._workers = workers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "audiochat_sse_clients",
            "Event streams open on this gateway process.",
            value=self._hub.client_count,
        )
        up = GaugeMetricFamily("audiochat_redis_up", "1 if Redis answered this scrape.")
        try:
            depth = self._queue_depths()
            workers = self._live_workers()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            logger.warning("metrics: redis unavailable (%s)", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield depth
        yield workers

    def _queue_depths(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "audiochat_queue_depth", "Tasks waiting in a model's queue.", labels=["model"]
        )
        with self._redis.pipeline(transaction=False) as pipe:
            for model in KNOWN_MODELS:
                pipe.llen(queue_for_model(model))
            lengths = pipe.execute()
        for model, length in zip(KNOWN_MODELS, lengths, strict=True):
            family.add_metric([model], float(length))
        return family

    def _live_workers(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "audiochat_workers", "Workers with a live heartbeat, by model.", labels=["model"]
        )
        counts = dict.fromkeys(KNOWN_MODELS, 0)
        for worker in self._workers.live_workers():
            counts[worker.model] = counts.get(worker.model, 0) + 1
        for model, count in counts.items():
            family.add_metric([model], float(count))
        return family


class MetricsMiddleware:
    """Counts and times every HTTP request, by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before it responds

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = _route_template(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.request_seconds.labels(method, route).observe(
                time.perf_counter() - started
            )


def _route_template(scope: Scope) -> str:
    """The path template of the route that served this request; `unmatched` when no route did
    (a 404, or a request a middleware answered before routing, such as a CORS preflight)."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else "unmatched"


@router.get("/metrics", include_in_schema=True, response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics of this gateway process (text format, or OpenMetrics if asked)."""
    gateway_metrics: GatewayMetrics = request.app.state.metrics
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(gateway_metrics.registry), media_type=content_type)
