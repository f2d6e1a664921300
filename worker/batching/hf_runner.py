"""The runner for transformers' own decoder models: Qwen2-Audio's language model, Llama.

These models place tokens by `position_ids` and keep keys already rotated for their own
positions, so a row's cache can move within the padded batch as it is; the padding is masked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache

from worker.batching.runner import KVCache, Prefilled

# The prefill of one prompt: the decoder's last hidden state `[1, length, hidden]` and its cache.
PrefillForward = Callable[[Any], tuple[torch.Tensor, Any]]


def cache_layers(cache: Any) -> KVCache:
    """A transformers cache as `(keys, values)` per layer."""
    return [(layer.keys, layer.values) for layer in cache.layers]


class DecoderRunner:
    """Prefill with the whole model (audio and all), decode with its text decoder alone."""

    seq_dim = 2
    max_batched_length: int | None = None

    def __init__(self, decoder: Any, lm_head: Any, prefill_forward: PrefillForward) -> None:
        self._decoder = decoder
        self._lm_head = lm_head
        self._prefill_forward = prefill_forward

    def prefill(self, prompt: Any) -> Prefilled:
        hidden, cache = self._prefill_forward(prompt)
        logits = self._lm_head(hidden[:, -1]).float()[0]
        return Prefilled(
            logits=logits, cache=cache_layers(cache), prompt_ids=prompt["input_ids"][0]
        )

    def text_prompt(self, length: int) -> Any:
        ids = torch.zeros(1, length, dtype=torch.long, device=self._lm_head.weight.device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def decode(
        self, tokens: torch.Tensor, cache: KVCache, mask: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, KVCache]:
        past = DynamicCache(ddp_cache_data=cache)
        out = self._decoder(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=positions[:, None],
            cache=past,
            use_cache=True,
        )
        logits = self._lm_head(out.last_hidden_state[:, -1]).float()
        return logits, cache_layers(out.cache)

    def shift(self, cache: KVCache, offset: int) -> KVCache:
        return cache


def text_prefill(decoder: Any) -> PrefillForward:
    """The prefill of a text-only model: its decoder over `input_ids`."""

    def forward(prompt: Any) -> tuple[torch.Tensor, Any]:
        out = decoder(
            input_ids=prompt["input_ids"],
            attention_mask=prompt["attention_mask"],
            cache=DynamicCache(),
            use_cache=True,
        )
        return out.last_hidden_state, out.cache

    return forward
