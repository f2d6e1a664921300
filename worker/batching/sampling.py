"""Choosing each row's next token, as `generate` would with the checkpoint's generation config.

Greedy when the job's temperature is (nearly) zero; otherwise sampling at that temperature
with the checkpoint's `top_k` and `top_p`. A repetition penalty in the checkpoint's config
applies either way, as it does in `generate`. transformers' own logits processors do the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

# Below this, sampling is greedy decoding in all but name, and dividing the logits by the
# temperature overflows them to inf (1e-40, which the API accepts, failed every job it met).
GREEDY_BELOW = 1e-4


@dataclass(frozen=True)
class Sampling:
    """How one row chooses its tokens."""

    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    @classmethod
    def from_config(cls, config: Any, temperature: float, **overrides: Any) -> Sampling:
        """A job's sampling under a checkpoint's `GenerationConfig` (its top-k, top-p and
        repetition penalty); `overrides` replace the checkpoint's values."""
        values = {
            "top_k": getattr(config, "top_k", None),
            "top_p": getattr(config, "top_p", None),
            "repetition_penalty": getattr(config, "repetition_penalty", None),
            **overrides,
        }
        return cls(temperature=temperature, **values)

    def processors(self) -> LogitsProcessorList:
        chain = LogitsProcessorList()
        if self.repetition_penalty not in (None, 1.0):
            chain.append(RepetitionPenaltyLogitsProcessor(penalty=self.repetition_penalty))
        if not self.greedy:
            chain.append(TemperatureLogitsWarper(self.temperature))
            if self.top_k:
                chain.append(TopKLogitsWarper(top_k=self.top_k))
            if self.top_p is not None and self.top_p < 1.0:
                chain.append(TopPLogitsWarper(top_p=self.top_p))
        return chain


class TokenChooser:
    """One row's choice of its next token from its logits and the ids it has seen; `extra`
    logits processors (a backend's own) run before the sampling's."""

    def __init__(
        self, sampling: Sampling, seed: int | None = None, extra: Sequence[LogitsProcessor] = ()
    ) -> None:
        self.sampling = sampling
        self._processors = LogitsProcessorList([*extra, *sampling.processors()])
        self._generator: torch.Generator | None = None
        self._seed = seed

    @property
    def plain_greedy(self) -> bool:
        """Greedy with nothing to apply first: the whole batch can share one argmax."""
        return self.sampling.greedy and not self._processors

    @property
    def looks_back(self) -> bool:
        """Whether its processors read the ids the row has seen."""
        return bool(self._processors)

    def choose(self, logits: torch.Tensor, seen: torch.Tensor) -> int:
        """The next token: `logits` `[vocab]` float32, `seen` `[length]` the row's ids so far."""
        scores = logits.unsqueeze(0)
        if self._processors:
            scores = self._processors(seen.unsqueeze(0), scores)  # type: ignore[arg-type]
        if self.sampling.greedy:
            return int(scores.argmax(dim=-1).item())
        probabilities = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probabilities, 1, generator=self._rng(logits)).item())

    def _rng(self, like: torch.Tensor) -> torch.Generator | None:
        if self._seed is None:
            return None
        if self._generator is None:
            self._generator = torch.Generator(device=like.device).manual_seed(self._seed)
        return self._generator
