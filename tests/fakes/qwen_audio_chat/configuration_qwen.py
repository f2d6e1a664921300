"""Stand-in for Qwen-Audio-Chat's `configuration_qwen.py`: a toy size, the same flags."""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig


class QWenConfig(PretrainedConfig):
    model_type = "qwen"

    def __init__(
        self,
        vocab_size: int = 4096,
        hidden_size: int = 8,
        bf16: bool = False,
        fp16: bool = False,
        fp32: bool = False,
        audio: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        # The real model chooses its precision from these flags, not from torch_dtype.
        self.bf16 = bf16
        self.fp16 = fp16
        self.fp32 = fp32
        self.audio = audio or {}
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
