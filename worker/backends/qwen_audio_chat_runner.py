"""Qwen-Audio-Chat's forward passes for the batch engine, through the checkpoint's own modules.

Its code rotates queries and keys by their index in the (padded) sequence, not by position ids,
and caches keys already rotated. A row moved `n` places later in the padded batch must have its
cached keys rotated `n` positions further, so that every query-key pair keeps its distance:
that is `shift`. Rotation is exact in arithmetic; in floating point the moved keys differ from
freshly rotated ones in the last bits. Past its training length (`seq_length`, 2048) the code
also scales attention by absolute index (logn) and stretches the rotary base (dynamic NTK), so
rows are batched only while the padded length stays within it (`max_batched_length`).
"""

from __future__ import annotations

from typing import Any

import torch

from worker.batching.runner import KVCache, Prefilled


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    """The checkpoint's `_rotate_half`: (x1, x2) -> (-x2, x1) over the last axis's halves."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class QwenAudioChatRunner:
    seq_dim = 1

    def __init__(self, model: Any) -> None:
        self._model = model
        self._transformer = model.transformer
        self.max_batched_length: int | None = int(model.config.seq_length)

    def prefill(self, prompt: Any) -> Prefilled:
        ids = prompt["input_ids"]
        out = self._transformer(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            audio_info=prompt["audio_info"],
            use_cache=True,
            return_dict=True,
        )
        logits = self._model.lm_head(out.last_hidden_state[:, -1]).float()[0]
        return Prefilled(logits=logits, cache=list(out.past_key_values), prompt_ids=ids[0])

    def text_prompt(self, length: int) -> Any:
        ids = torch.zeros(1, length, dtype=torch.long, device=self._model.lm_head.weight.device)
        return {"input_ids": ids, "audio_info": None}

    def decode(
        self, tokens: torch.Tensor, cache: KVCache, mask: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, KVCache]:
        # `positions` are not needed: this code positions by index in the padded sequence.
        out = self._transformer(
            input_ids=tokens[:, None],
            past_key_values=tuple(cache),
            attention_mask=mask,
            use_cache=True,
            return_dict=True,
        )
        logits = self._model.lm_head(out.last_hidden_state[:, -1]).float()
        return logits, list(out.past_key_values)

    def shift(self, cache: KVCache, offset: int) -> KVCache:
        if offset == 0:
            return cache
        inv_freq = self._transformer.rotary_emb.inv_freq.float()
        angles = offset * inv_freq
        angles = torch.cat((angles, angles))
        cos, sin = angles.cos(), angles.sin()
        rotated = []
        for keys, values in cache:
            k = keys.float()
            rotated.append(((k * cos + _rotate_half(k) * sin).type_as(keys), values))
        return rotated
