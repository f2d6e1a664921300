"""Stand-in for Qwen-Audio-Chat's `qwen_generation_utils.py`: `make_context` and stop words.

`make_context` returns three values, `(raw_text, context_tokens, audio_info)`, as the real one
does; the real `chat_stream` unpacks only two, which is why audiochat calls this directly.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.generation import LogitsProcessor

HistoryType = list[tuple[str, str]]


def get_stop_words_ids(chat_format: str, tokenizer: Any) -> list[list[int]]:
    if chat_format != "chatml":
        raise NotImplementedError(f"Unknown chat format {chat_format!r}")
    return [[tokenizer.im_end_id], [tokenizer.im_start_id]]


def make_context(
    tokenizer: Any,
    query: str,
    history: HistoryType | None = None,
    system: str = "",
    max_window_size: int = 6144,
    chat_format: str = "chatml",
) -> tuple[str, list[int], dict[str, Any] | None]:
    if chat_format != "chatml":
        raise NotImplementedError(f"Unknown chat format {chat_format!r}")
    newline = tokenizer.encode("\n")

    def turn(role: str, content: str) -> tuple[str, list[int]]:
        info = tokenizer.process_audio(content)
        tokens = tokenizer.encode(f"{role}\n{content}", audio_info=info)
        return f"<|im_start|>{role}\n{content}<|im_end|>", [
            tokenizer.im_start_id,
            *tokens,
            tokenizer.im_end_id,
        ]

    system_text, system_tokens = turn("system", system)
    raw_text, tokens = "", []
    # The latest turns are kept when the history is longer than the window.
    for past_query, past_answer in reversed(history or []):
        query_text, query_tokens = turn("user", past_query)
        answer_text, answer_tokens = turn("assistant", past_answer)
        more = newline + query_tokens + newline + answer_tokens
        if len(system_tokens) + len(tokens) + len(more) >= max_window_size:
            break
        tokens = more + tokens
        raw_text = f"\n{query_text}\n{answer_text}" + raw_text
    query_text, query_tokens = turn("user", query)
    tokens = system_tokens + tokens + newline + query_tokens + newline
    tokens += [tokenizer.im_start_id, *tokenizer.encode("assistant"), *newline]
    raw_text = f"{system_text}{raw_text}\n{query_text}\n<|im_start|>assistant\n"
    return raw_text, tokens, tokenizer.process_audio(raw_text)


class StopWordsLogitsProcessor(LogitsProcessor):
    """Once a stop word has been generated, the next token is the end of text."""

    def __init__(self, stop_words_ids: list[list[int]], eos_token_id: int) -> None:
        self.stop_words_ids = [ids for ids in stop_words_ids if ids != [eos_token_id]]
        self.eos_token_id = eos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, sequence in enumerate(input_ids.tolist()):
            if any(sequence[-len(stop) :] == stop for stop in self.stop_words_ids):
                scores[row, self.eos_token_id] = float(2**15)
        return scores
