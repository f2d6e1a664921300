"""What the embedded backend asks its LLM: messages, chat templates of every kind, and the ban
on repeating a run of tokens within an answer."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from shared.config import EmbeddedSettings
from worker.backends.base import AnswerRequest, Turn
from worker.backends.short_answers import (
    EXAMPLE_TURNS,
    NoRepeatInAnswer,
    build_prompt,
    chat_messages,
    encode_chat,
)

WORDS = ["[unk]", "[eos]", "question", "answer", "system", "user", "assistant", ":", "the",
         "Question", "Answer"]  # fmt: skip
PLAIN_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
# Like some models' templates: a system turn is an error.
NO_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
)


def tokenizer(template: str | None) -> PreTrainedTokenizerFast:
    vocab = {word: index for index, word in enumerate(WORDS)}
    inner = Tokenizer(models.WordLevel(vocab, unk_token="[unk]"))
    inner.pre_tokenizer = pre_tokenizers.Whitespace()
    made = PreTrainedTokenizerFast(tokenizer_object=inner, unk_token="[unk]", eos_token="[eos]")
    made.chat_template = template
    return made


def decoded(tok: PreTrainedTokenizerFast, inputs: dict[str, torch.Tensor]) -> str:
    return str(tok.decode(inputs["input_ids"][0]))


def test_messages_are_system_examples_history_then_question() -> None:
    request = AnswerRequest(
        question="And of Italy?", history=[Turn("Capital of France?", "Paris.")]
    )
    messages = chat_messages(request, EmbeddedSettings(system_prompt="Be brief."))
    assert messages[0] == {"role": "system", "content": "Be brief."}
    examples = [m["content"] for m in messages[1 : 1 + 2 * len(EXAMPLE_TURNS)]]
    assert examples == [text for turn in EXAMPLE_TURNS for text in turn]
    assert messages[-3:] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]


def test_no_system_prompt_and_no_examples_leave_the_conversation_alone() -> None:
    request = AnswerRequest(question="Why?")
    settings = EmbeddedSettings(system_prompt="", answer_examples=False)
    assert chat_messages(request, settings) == [{"role": "user", "content": "Why?"}]


def test_a_question_about_a_recording_carries_its_transcript() -> None:
    request = AnswerRequest(question="Who speaks?", transcript="Mister Quilter is here.")
    assert build_prompt(request) == (
        'Here is a transcript of an audio recording:\n"Mister Quilter is here."\n\nWho speaks?'
    )
    spoken = AnswerRequest(question="the question", transcript="the question")
    assert build_prompt(spoken) == "the question"


def test_a_chat_template_gets_the_messages() -> None:
    tok = tokenizer(PLAIN_TEMPLATE)
    messages = [{"role": "system", "content": "the"}, {"role": "user", "content": "question"}]
    inputs, plain = encode_chat(tok, messages)
    assert not plain
    assert decoded(tok, inputs).split() == ["system", ":", "the", "user", ":", "question",
                                            "assistant", ":"]  # fmt: skip


def test_a_template_that_refuses_a_system_turn_gets_it_in_the_first_user_turn() -> None:
    tok = tokenizer(NO_SYSTEM_TEMPLATE)
    messages = [{"role": "system", "content": "the"}, {"role": "user", "content": "question"}]
    inputs, plain = encode_chat(tok, messages)
    assert not plain
    assert decoded(tok, inputs).split() == ["user", ":", "the", "question"]


def test_a_template_error_of_another_kind_is_not_hidden() -> None:
    tok = tokenizer("{{ raise_exception('broken template') }}")
    with pytest.raises(Exception, match="broken template"):
        encode_chat(tok, [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])


def test_a_tokenizer_without_a_template_gets_plain_question_and_answer_text() -> None:
    tok = tokenizer(None)
    messages = [
        {"role": "system", "content": "the"},
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "question"},
    ]
    inputs, plain = encode_chat(tok, messages)
    assert plain
    words = decoded(tok, inputs).split()
    assert words == ["the", "Question", ":", "question", "Answer", ":", "answer", "Question",
                     ":", "question", "Answer", ":"]  # fmt: skip


def test_a_run_repeated_in_the_answer_is_banned_but_not_one_from_the_prompt() -> None:
    # Prompt 7 8 9 then answer 1 2 3 1 2: with runs of 3, the next token may not be 3.
    processor = NoRepeatInAnswer(prompt_length=3, size=3)
    ids = torch.tensor([[7, 8, 9, 1, 2, 3, 1, 2]])
    scores = processor(ids, torch.zeros(1, 10))
    assert scores[0, 3] == -float("inf")
    assert torch.isfinite(scores[0, [0, 1, 2, 4, 5, 6, 7, 8, 9]]).all()
    # 8 9 appears in the prompt followed by... nothing of the answer's: the prompt is not
    # counted, so an answer may repeat the question's words.
    ids = torch.tensor([[8, 9, 5, 1, 8, 9]])
    scores = NoRepeatInAnswer(prompt_length=3, size=3)(ids, torch.zeros(1, 10))
    assert torch.isfinite(scores).all()
