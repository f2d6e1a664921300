"""How the embedded backend asks a small chat model for a short answer, and stops it rambling.

A 135M-parameter model asked a bare question tends to write paragraphs and then loop. What
keeps it short (measured in bench/answers.py): a system prompt asking for one sentence, two
example turns that show one, a cap on new tokens per model (shared/config.py), and a ban on
repeating a run of tokens within the answer.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor

from shared.config import EmbeddedSettings
from worker.backends.base import AnswerRequest

# Questions unlike the ones in bench/questions.json, so the examples teach the length of an
# answer, not its content.
EXAMPLE_TURNS = (
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong, in 1969."),
)
# A model whose tokenizer has no chat template (a base model's GGUF) gets plain text and
# stops at the end of its answer's line.
LINE_ENDS = ("\n", "\n\n")


def build_prompt(request: AnswerRequest) -> str:
    """The user turn for a model that cannot hear: the transcript stands in for the audio."""
    if request.transcript and request.question and request.question != request.transcript:
        return (
            f'Here is a transcript of an audio recording:\n"{request.transcript}"\n\n'
            f"{request.question}"
        )
    return request.question


def chat_messages(request: AnswerRequest, settings: EmbeddedSettings) -> list[dict[str, str]]:
    """System prompt, example turns, the job's history (text only), then its question."""
    messages: list[dict[str, str]] = []
    if settings.system_prompt:
        messages.append({"role": "system", "content": settings.system_prompt})
    turns: list[tuple[str, str]] = list(EXAMPLE_TURNS) if settings.answer_examples else []
    # The model cannot hear: an earlier turn's audio is left out, its text kept.
    turns += [(turn.question, turn.answer) for turn in request.history]
    for question, answer in turns:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    messages.append({"role": "user", "content": build_prompt(request)})
    return messages


def encode_chat(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[dict[str, Any], bool]:
    """Model inputs for `messages`, and whether they are plain text (no chat template)."""
    if not getattr(tokenizer, "chat_template", None):
        return dict(tokenizer(_plain_text(messages), return_tensors="pt")), True
    try:
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    except Exception as exc:
        # Some templates refuse a system turn; those models get it as part of the first user turn.
        if messages[0]["role"] != "system" or "system" not in str(exc).lower():
            raise
        system, first, *rest = messages
        merged = {"role": "user", "content": f"{system['content']}\n\n{first['content']}"}
        encoded = tokenizer.apply_chat_template(
            [merged, *rest], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    return dict(encoded), False


def line_end_ids(tokenizer: Any, model: Any) -> list[int]:
    """End-of-text ids plus the ids of tokens that end a line, for plain-text prompts."""
    ends = model.generation_config.eos_token_id
    if ends is None:
        ends = tokenizer.eos_token_id
    ids = [ends] if isinstance(ends, int) else list(ends or [])
    for text in LINE_ENDS:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) == 1:
            ids.append(int(encoded[0]))
    return ids


def _plain_text(messages: list[dict[str, str]]) -> str:
    lines: list[str] = []
    for message in messages:
        if message["role"] == "system":
            lines.append(message["content"] + "\n")
        elif message["role"] == "user":
            lines.append(f"Question: {message['content']}")
        else:
            lines.append(f"Answer: {message['content']}\n")
    lines.append("Answer:")
    return "\n".join(lines)


class NoRepeatInAnswer(LogitsProcessor):
    """Bans the token that would repeat a run of `size` tokens already in the answer.

    transformers' own `no_repeat_ngram_size` counts the prompt too, so it would forbid an answer
    from repeating the question ("The capital of France is Paris") or an example's phrasing.
    """

    def __init__(self, prompt_length: int, size: int) -> None:
        self._start = prompt_length
        self._size = size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        size = self._size
        for row, ids in enumerate(input_ids.tolist()):
            answer = ids[self._start :]
            if len(answer) < size:
                continue
            tail = answer[len(answer) - size + 1 :]
            banned = {
                answer[i + size - 1]
                for i in range(len(answer) - size + 1)
                if answer[i : i + size - 1] == tail
            }
            if banned:
                scores[row, list(banned)] = -float("inf")
        return scores
