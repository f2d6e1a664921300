"""Stand-in for Qwen-Audio-Chat's `modeling_qwen.py`: the same generate() surface, a scripted
answer instead of a language model.

Like the real model it takes `audio_info` and `stop_words_ids` through `generate`, and it does
not inherit GenerationMixin (transformers adds it to remote models). What it answers is built
from what reached it, so tests can check the adapter: how many audio inputs (with a timestamp
token at the end of each, as the real model gives), and how many earlier turns:

    heard 2 audio after 1 turns: <|0.00|>clip 1<|5.86|> <|0.00|>clip 2<|9.00|>

A prompt with audio tokens but no `audio_info` (what the real `chat_stream` does) fails.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.generation.logits_process import LogitsProcessorList
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_qwen import QWenConfig
from .qwen_generation_utils import (
    HistoryType,
    StopWordsLogitsProcessor,
    get_stop_words_ids,
    make_context,
)
from .tokenization_qwen import EOD_ID, SPECIAL_IDS, VOCAB_SIZE, encode

__all__ = ["HistoryType", "QWenLMHeadModel", "get_stop_words_ids", "make_context"]


def scripted_answer(input_ids: torch.Tensor, audio_info: dict[str, Any] | None) -> list[int]:
    ids = input_ids[0].tolist()
    audios = ids.count(SPECIAL_IDS["<audio>"])
    if audios and audio_info is None:
        raise ValueError("the prompt has audio but no audio_info reached generate()")
    heard = len(audio_info["audio_urls"]) if audio_info else 0
    if heard != audios:
        raise ValueError(f"{audios} audio inputs in the prompt, {heard} in audio_info")
    # system, user, assistant: three turns are this one; two more for each earlier turn.
    turns = (ids.count(SPECIAL_IDS["<|im_start|>"]) - 3) // 2
    text = f"heard {audios} audio after {turns} turns:"
    lengths = audio_info["input_audio_lengths"].tolist() if audio_info else []
    for i, (after_cnn, _tokens) in enumerate(lengths):
        # One encoder frame is 20 ms of audio.
        text += f" <|0.00|>clip {i + 1}<|{min(after_cnn * 0.02, 30.0):.2f}|>"
    return [*encode(text), SPECIAL_IDS["<|im_end|>"]]


class QWenLMHeadModel(PreTrainedModel):
    config_class = QWenConfig
    base_model_prefix = "transformer"

    def __init__(self, config: QWenConfig) -> None:
        super().__init__(config)
        if config.bf16 + config.fp16 + config.fp32 > 1:
            raise ValueError('Only one of "bf16", "fp16", "fp32" can be true')
        if config.vocab_size < VOCAB_SIZE:
            raise ValueError(f"vocab_size must be at least {VOCAB_SIZE}")
        self.wte = nn.Embedding(config.vocab_size, config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.bf16:
            self.bfloat16()
        self._script: list[int] = []
        self._prompt_length = 0
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.wte

    def prepare_inputs_for_generation(
        self, input_ids: torch.Tensor, past_key_values: Any = None, **kwargs: Any
    ) -> dict[str, Any]:
        # No cache: each step sees the whole sequence, which is what the script counts on.
        return {
            "input_ids": input_ids,
            "attention_mask": kwargs.get("attention_mask"),
            "audio_info": kwargs.get("audio_info"),
        }

    def forward(
        self,
        input_ids: torch.Tensor,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        audio_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        logits = self.lm_head(self.wte(input_ids)).float()
        step = input_ids.shape[1] - self._prompt_length
        token = self._script[step] if 0 <= step < len(self._script) else EOD_ID
        logits[:, -1, token] += 1e4
        return CausalLMOutputWithPast(logits=logits)

    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: Any = None,
        logits_processor: LogitsProcessorList | None = None,
        stopping_criteria: Any = None,
        streamer: Any = None,
        **kwargs: Any,
    ) -> Any:
        stop_words_ids = kwargs.pop("stop_words_ids", None)
        config = generation_config or self.generation_config
        if stop_words_ids is not None:
            logits_processor = logits_processor or LogitsProcessorList()
            logits_processor.append(StopWordsLogitsProcessor(stop_words_ids, config.eos_token_id))
        input_ids = inputs if inputs is not None else kwargs["input_ids"]
        self._prompt_length = input_ids.shape[1]
        self._script = scripted_answer(input_ids, kwargs.get("audio_info"))
        return super().generate(
            inputs,
            generation_config=generation_config,
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            streamer=streamer,
            **kwargs,
        )

    def chat_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            "the real chat_stream loses audio_info; audiochat must not call it"
        )
