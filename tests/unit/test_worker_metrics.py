"""A worker's GPU memory series: present only when its model already uses CUDA.

No GPU here, so a stand-in `torch` module plays the CUDA runtime; the integration tests cover
the rest of the worker's metrics on a real worker.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from prometheus_client import generate_latest

from worker.metrics import WorkerMetrics


def _cuda(initialized: bool) -> SimpleNamespace:
    return SimpleNamespace(
        is_initialized=lambda: initialized,
        device_count=lambda: 2,
        memory_allocated=lambda i: 100 * (i + 1),
        memory_reserved=lambda i: 200 * (i + 1),
        get_device_properties=lambda i: SimpleNamespace(total_memory=1000 * (i + 1)),
    )


def _scrape() -> str:
    return generate_latest(WorkerMetrics("qwen2-audio").registry).decode()


def test_gpu_memory_per_device_when_cuda_is_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=_cuda(initialized=True)))
    text = _scrape()
    assert 'audiochat_worker_gpu_memory_allocated_bytes{device="cuda:0"} 100.0' in text
    assert 'audiochat_worker_gpu_memory_reserved_bytes{device="cuda:1"} 400.0' in text
    assert 'audiochat_worker_gpu_memory_total_bytes{device="cuda:1"} 2000.0' in text


def test_no_gpu_series_when_cuda_was_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=_cuda(initialized=False)))
    assert "gpu_memory" not in _scrape()
    monkeypatch.delitem(sys.modules, "torch")
    assert "gpu_memory" not in _scrape()


def test_load_time_and_answer_throughput() -> None:
    metrics = WorkerMetrics("embedded")
    metrics.model_loaded(2.5)
    metrics.answer_done(2.0, completion_tokens=40)
    metrics.answer_done(1.0, completion_tokens=None)  # a backend that does not count tokens
    text = generate_latest(metrics.registry).decode()
    assert 'audiochat_worker_model_load_seconds{model="embedded"} 2.5' in text
    assert 'audiochat_worker_completion_tokens_total{model="embedded"} 40.0' in text
    assert 'audiochat_worker_tokens_per_second_sum{model="embedded"} 20.0' in text
    assert (
        'audiochat_worker_stage_duration_seconds_count{model="embedded",stage="answer"} 2.0' in text
    )
