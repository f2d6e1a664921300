"""How many jobs a worker runs at once: the setting, the backend's default, and, on a GPU, what
the card's free memory holds, measured once the model is loaded.

The measurement prefills one prompt of `batch_row_tokens` tokens: the cache it makes gives the
bytes a token of cache costs, and the memory the prefill peaked at above that gives what one
forward pass needs besides. Whatever the card has free beyond that, less a tenth for the
allocator's slack, is for caches: the concurrency is lowered to the rows of `batch_row_tokens`
that fit, and the engine admits a longer row only while the batch's caches still fit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from shared.config import Settings
from worker.batching.engine import BatchEngine
from worker.batching.runner import ModelRunner
from worker.gpu import uses_gpu

logger = logging.getLogger(__name__)

# Of the memory free after loading and the measured forward pass, what caches may use.
CACHE_SHARE = 0.9


@dataclass(frozen=True)
class CacheBudget:
    """What the measurement found."""

    bytes_per_token: int
    forward_bytes: int  # a prefill's peak beyond its own cache
    free_bytes: int  # free on the card after loading, before the measurement
    cache_tokens: int  # positions of cache (rows times length) that fit


def measure(runner: ModelRunner, row_tokens: int) -> CacheBudget:
    """Prefill a text prompt of `row_tokens` tokens on the GPU and read the card's memory."""
    torch.cuda.synchronize()
    free, _total = torch.cuda.mem_get_info()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    with torch.inference_mode():
        prefilled = runner.prefill(runner.text_prompt(row_tokens))
    cache_bytes = sum(k.nbytes + v.nbytes for k, v in prefilled.cache)
    forward = max(0, torch.cuda.max_memory_allocated() - before - cache_bytes)
    del prefilled
    torch.cuda.empty_cache()
    per_token = max(1, cache_bytes // row_tokens)
    usable = int(free * CACHE_SHARE) - forward
    return CacheBudget(per_token, forward, free, max(0, usable // per_token))


def start_engine(
    runner: ModelRunner, settings: Settings, default_concurrency: int, device: str
) -> BatchEngine:
    """The worker's engine, sized by the setting or the backend's default, and on a GPU by
    its memory; started."""
    wanted = settings.worker_concurrency or default_concurrency
    concurrency, cache_tokens = wanted, None
    if uses_gpu(device):
        budget = measure(runner, settings.batch_row_tokens)
        cache_tokens = budget.cache_tokens
        fits = max(1, budget.cache_tokens // settings.batch_row_tokens)
        concurrency = min(wanted, fits)
        logger.info(
            "GPU memory: %.1f GiB free after loading, %d KiB of cache a token, %.1f GiB for a "
            "forward pass: %d rows of %d tokens fit; running %d jobs at once",
            budget.free_bytes / 2**30,
            budget.bytes_per_token // 1024,
            budget.forward_bytes / 2**30,
            fits,
            settings.batch_row_tokens,
            concurrency,
        )
    engine = BatchEngine(runner, max_batch=concurrency, max_cache_tokens=cache_tokens)
    engine.start()
    return engine
