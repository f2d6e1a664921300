"""A model that fails mid-generation, as a GPU running out of memory would: the real runner of a
real backend, except that a decoding step raises once `steps` have run since the last prefill.

The fakes in tests/fakes/qwen2_audio.py and tests/fakes/qwen_audio_chat.py load the real backend
and swap its engine for one around this runner, so everything but that one step is real.
"""

from __future__ import annotations

from typing import Any

from worker.batching.engine import BatchEngine
from worker.batching.runner import KVCache, ModelRunner, Prefilled

FAILURE = "scripted failure in generate"


class DecodeFails:
    def __init__(self, runner: ModelRunner, steps: int) -> None:
        self._runner = runner
        self._steps = steps
        self._since_prefill = 0
        self.seq_dim = runner.seq_dim
        self.max_batched_length = runner.max_batched_length

    def prefill(self, prompt: Any) -> Prefilled:
        self._since_prefill = 0
        return self._runner.prefill(prompt)

    def text_prompt(self, length: int) -> Any:
        return self._runner.text_prompt(length)

    def decode(self, tokens: Any, cache: KVCache, mask: Any, positions: Any) -> Any:
        self._since_prefill += 1
        if self._since_prefill > self._steps:
            raise RuntimeError(FAILURE)
        return self._runner.decode(tokens, cache, mask, positions)

    def shift(self, cache: KVCache, offset: int) -> KVCache:
        return self._runner.shift(cache, offset)


def failing_engine(engine: BatchEngine, steps: int = 1) -> BatchEngine:
    """Stop `engine` and start one like it around a runner that fails after `steps` steps."""
    engine.stop()
    failing = BatchEngine(
        DecodeFails(engine.runner, steps), engine.max_batch, engine.max_cache_tokens
    )
    failing.start()
    return failing
