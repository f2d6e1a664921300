"""A worker's Prometheus metrics, served on a port of its own (`AUDIOCHAT_WORKER_METRICS_PORT`).

Stage durations, answer throughput in tokens per second, failures by error code, how long the
model took to load, the process's CPU and memory, and GPU memory when the model runs on CUDA.
Each worker process serves its own numbers; Prometheus scrapes every worker.

Stages are measured from the events the pipeline publishes (`MeteredEvents`), so the pipeline
itself knows nothing of metrics: a stage starts with its `status` event and ends with its
`*.completed` event (or an `error`).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.events import DROPPED, EventPublisher
from shared.schemas import EventName, JobStatus

logger = logging.getLogger(__name__)

# Seconds: a short transcription on a GPU up to a long answer on a CPU.
_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
_RATE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
_STAGE_OF_STATUS = {JobStatus.TRANSCRIBING.value: "transcribe", JobStatus.ANSWERING.value: "answer"}
# Stages whose end was never published (a canceled job) are forgotten beyond this many.
_MAX_OPEN_STAGES = 64


class WorkerMetrics:
    """The metrics of one worker process, in a registry of its own."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "audiochat_worker_stage_duration_seconds",
            "Time a completed stage took, by stage (transcribe, answer).",
            ["model", "stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.tokens_per_second = Histogram(
            "audiochat_worker_tokens_per_second",
            "Answer throughput: completion tokens over the answer stage's duration.",
            ["model"],
            buckets=_RATE_BUCKETS,
            registry=self.registry,
        )
        self.completion_tokens = Counter(
            "audiochat_worker_completion_tokens",
            "Tokens generated in answers.",
            ["model"],
            registry=self.registry,
        )
        self.failures = Counter(
            "audiochat_worker_job_failures",
            "Jobs that failed on this worker, by error code.",
            ["model", "code"],
            registry=self.registry,
        )
        self.model_load_seconds = Gauge(
            "audiochat_worker_model_load_seconds",
            "How long loading this worker's model took when it started.",
            ["model"],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        self.registry.register(_GpuMemoryCollector())

    def model_loaded(self, seconds: float) -> None:
        self.model_load_seconds.labels(self.model).set(seconds)

    def stage_done(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(self.model, stage).observe(seconds)

    def answer_done(self, seconds: float, completion_tokens: int | None) -> None:
        self.stage_done("answer", seconds)
        if completion_tokens:
            self.completion_tokens.labels(self.model).inc(completion_tokens)
            if seconds > 0:
                self.tokens_per_second.labels(self.model).observe(completion_tokens / seconds)

    def job_failed(self, code: str) -> None:
        self.failures.labels(self.model, code).inc()

    def watch_engine(self, engine: Any) -> None:
        """Report a batch engine's rows and steps (worker/batching/engine.py) at scrape time."""
        self.registry.register(_EngineCollector(engine, self.model))

    def serve(self, host: str, port: int) -> None:
        """Serve these metrics over HTTP from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
        logger.info("worker metrics on http://%s:%d/metrics", host, port)


class _GpuMemoryCollector(Collector):
    """CUDA memory per device, read at scrape time; nothing on a worker that does not use CUDA."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        # Only a worker whose model already uses CUDA reports: importing torch or creating a
        # CUDA context just to be scraped would cost memory on every CPU worker.
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_initialized():
            return
        allocated = GaugeMetricFamily(
            "audiochat_worker_gpu_memory_allocated_bytes",
            "GPU memory held by tensors, by device.",
            labels=["device"],
        )
        reserved = GaugeMetricFamily(
            "audiochat_worker_gpu_memory_reserved_bytes",
            "GPU memory reserved by PyTorch's allocator, by device.",
            labels=["device"],
        )
        total = GaugeMetricFamily(
            "audiochat_worker_gpu_memory_total_bytes",
            "GPU memory on the device.",
            labels=["device"],
        )
        for index in range(torch.cuda.device_count()):
            device = f"cuda:{index}"
            allocated.add_metric([device], float(torch.cuda.memory_allocated(index)))
            reserved.add_metric([device], float(torch.cuda.memory_reserved(index)))
            total.add_metric([device], float(torch.cuda.get_device_properties(index).total_memory))
        yield allocated
        yield reserved
        yield total


class _EngineCollector(Collector):
    """The batch engine's counters, read at scrape time: the mean batch is rows over steps."""

    def __init__(self, engine: Any, model: str) -> None:
        self._engine = engine
        self._model = model

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        engine, labels = self._engine, [self._model]
        steps = CounterMetricFamily(
            "audiochat_worker_batch_steps", "Decoding steps of the batch engine.", labels=["model"]
        )
        steps.add_metric(labels, float(engine.steps))
        rows = CounterMetricFamily(
            "audiochat_worker_batch_rows",
            "Rows decoded, summed over steps: divided by the steps, the mean batch.",
            labels=["model"],
        )
        rows.add_metric(labels, float(engine.rows_decoded))
        yield steps
        yield rows
        for name, text, value in (
            ("running", "Rows in the batch now.", engine.running),
            ("waiting", "Generations waiting to join the batch.", engine.waiting),
            ("capacity", "The most rows the batch takes.", engine.max_batch),
        ):
            gauge = GaugeMetricFamily(f"audiochat_worker_batch_{name}", text, labels=["model"])
            gauge.add_metric(labels, float(value))
            yield gauge


class MeteredEvents(EventPublisher):
    """The pipeline's event publisher: publishes as usual, and measures stages from the events."""

    def __init__(self, client: redis.Redis, retention_seconds: int, metrics: WorkerMetrics):
        super().__init__(client, retention_seconds)
        self._metrics = metrics
        self._open: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # Stages of several jobs publish from their own threads.
        self._lock = threading.Lock()

    def publish(self, job_id: str, event: EventName, data: dict[str, Any]) -> int:
        event_id = super().publish(job_id, event, data)
        if event_id == DROPPED:
            return event_id  # the job had already ended: nothing to measure
        try:
            with self._lock:
                self._observe(job_id, event, data, time.monotonic())
        except Exception:
            # A metric must never fail a job.
            logger.exception("measuring an event failed", extra={"job_id": job_id})
        return event_id

    def _observe(self, job_id: str, event: EventName, data: dict[str, Any], now: float) -> None:
        if event is EventName.STATUS and data.get("status") in _STAGE_OF_STATUS:
            self._open[job_id] = (_STAGE_OF_STATUS[data["status"]], now)
            while len(self._open) > _MAX_OPEN_STAGES:
                self._open.popitem(last=False)
        elif event is EventName.TRANSCRIPT_COMPLETED:
            started = self._open.pop(job_id, None)
            if started is not None:
                self._metrics.stage_done("transcribe", now - started[1])
        elif event is EventName.ANSWER_COMPLETED:
            started = self._open.pop(job_id, None)
            if started is not None:
                self._metrics.answer_done(now - started[1], data.get("completion_tokens"))
        elif event is EventName.ERROR:
            self._open.pop(job_id, None)
            self._metrics.job_failed(str(data.get("code", "unknown")))
