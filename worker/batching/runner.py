"""What the batch engine needs from a model: prefill one prompt, decode one token for a batch.

A key/value cache is a list with one `(keys, values)` pair per layer. Its sequence axis is the
runner's `seq_dim`: transformers' own models keep `[batch, heads, seq, dim]` (2), Qwen (v1)'s
code `[batch, seq, heads, dim]` (1). Rows of a batch are aligned on the right and padded on
the left; `mask` marks real positions with 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

KVCache = list[tuple["torch.Tensor", "torch.Tensor"]]


@dataclass
class Prefilled:
    """A prompt after its forward pass: the next token's logits and the prompt's cache."""

    logits: torch.Tensor  # [vocab], float32
    cache: KVCache  # batch of 1
    prompt_ids: torch.Tensor  # [length]: what repetition penalties look back on


class ModelRunner(Protocol):
    """The forward passes of one loaded model, called only from the engine's thread."""

    seq_dim: int
    # Rows are batched only while the padded length stays at or under this many tokens (None:
    # no limit). Qwen (v1) scales attention by absolute position past its training length, so
    # padding a row past it would change that row's answer.
    max_batched_length: int | None

    def prefill(self, prompt: Any) -> Prefilled:
        """Run one prompt (as the backend prepared it) and return what decoding starts from."""
        ...

    def text_prompt(self, length: int) -> Any:
        """A prompt of `length` text tokens, as `prefill` takes it (to measure memory)."""
        ...

    def decode(
        self,
        tokens: torch.Tensor,
        cache: KVCache,
        mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> tuple[torch.Tensor, KVCache]:
        """Logits `[batch, vocab]` (float32) for `tokens` `[batch]`, fed after `cache`; `mask`
        `[batch, length + 1]` covers the cache and the new token; `positions` `[batch]` is
        each row's own position of its new token (its real length so far)."""
        ...

    def shift(self, cache: KVCache, offset: int) -> KVCache:
        """`cache` (any number of rows) as it must be once moved `offset` places later in the
        padded batch (negative: earlier); the identity for models that position by `positions`."""
        ...
