"""The runner for transformers' own decoder models: Qwen2-Audio's language model, Llama.

These models place tokens by `position_ids` and keep keys already rotated for their own
positions, so a row's cache can move within the padded batch as it is; the padding is masked.
transformers 5 renamed `past_key_values` to `cache` (in arguments and outputs) and keeps a
cache's tensors per layer; both spellings are taken, so one worker image runs either.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache

from worker.batching.runner import KVCache, Prefilled

# The prefill of one prompt: the decoder's last hidden state `[1, length, hidden]` and its cache.
PrefillForward = Callable[[Any], tuple[torch.Tensor, Any]]


def cache_keyword(module: Any) -> str:
    """The name `module.forward` takes its key/value cache by."""
    parameters = inspect.signature(module.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def output_cache(output: Any) -> Any:
    """The cache a forward pass returned, by either name."""
    return output["cache"] if "cache" in output else output["past_key_values"]


def cache_layers(cache: Any) -> KVCache:
    """A transformers cache as `(keys, values)` per layer."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def forward_with_cache(module: Any, cache: Any, **inputs: Any) -> Any:
    """`module(**inputs)` with `cache` under the name it takes, caching."""
    return module(**inputs, **{cache_keyword(module): cache}, use_cache=True)


class DecoderRunner:
    """Prefill with the whole model (audio and all), decode with its text decoder alone."""

    seq_dim = 2
    max_batched_length: int | None = None

    def __init__(self, decoder: Any, lm_head: Any, prefill_forward: PrefillForward) -> None:
        self._decoder = decoder
        self._lm_head = lm_head
        self._prefill_forward = prefill_forward
        self._keyword = cache_keyword(decoder)

    def prefill(self, prompt: Any) -> Prefilled:
        hidden, cache = self._prefill_forward(prompt)
        logits = self._lm_head(hidden[:, -1]).float()[0]
        ids = prompt["input_ids"][0]
        return Prefilled(logits=logits, cache=cache_layers(cache), prompt_ids=ids)

    def text_prompt(self, length: int) -> Any:
        ids = torch.zeros(1, length, dtype=torch.long, device=self._lm_head.weight.device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def decode(
        self, tokens: torch.Tensor, cache: KVCache, mask: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, KVCache]:
        out = self._decoder(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=positions[:, None],
            use_cache=True,
            **{self._keyword: DynamicCache(ddp_cache_data=cache)},
        )
        logits = self._lm_head(out.last_hidden_state[:, -1]).float()
        return logits, cache_layers(output_cache(out))

    def shift(self, cache: KVCache, offset: int) -> KVCache:
        return cache


def text_prefill(decoder: Any) -> PrefillForward:
    """The prefill of a text-only model: its decoder over `input_ids`."""

    def forward(prompt: Any) -> tuple[torch.Tensor, Any]:
        out = forward_with_cache(decoder, DynamicCache(), **prompt)
        return out.last_hidden_state, output_cache(out)

    return forward
