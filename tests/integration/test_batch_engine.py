"""The batch engine on a real model: the tiny Qwen2-Audio checkpoint, in this process, fp32.

Each job's greedy answer in a batch must be its answer alone, whatever the other rows are
(short and long audio, several audio parts, history, typed questions) and whenever they join;
each row ends on its own; a row that breaks fails alone. The qwen-audio-chat backend, whose
model needs the pinned environment, is checked the same way by a probe
(tests/integration/test_qwen_audio_chat.py::test_answers_in_a_batch_are_the_answers_alone).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.errors import ModelError
from testbed import tiny_qwen2_audio
from worker.audio import SAMPLE_RATE, decode_audio
from worker.backends.base import AnswerRequest, GenerationStats, Turn
from worker.backends.qwen2_audio import Qwen2AudioBackend, runner
from worker.batching.engine import BatchEngine, RowStream
from worker.batching.runner import Prefilled

pytestmark = pytest.mark.slow

CLIP = "1272-128104-0000.flac"
Answer = tuple[str, GenerationStats]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Qwen2AudioBackend]:
    folder = tiny_qwen2_audio.build(tmp_path_factory.mktemp("tiny-qwen2-audio"))
    loaded = Qwen2AudioBackend.load(
        Settings(model="qwen2-audio", model_path=str(folder), device="cpu")
    )
    yield loaded
    loaded.engine.stop()


@pytest.fixture(scope="module")
def requests(shared_audio: Path) -> list[AnswerRequest]:
    """Rows of different shapes."""
    clip = decode_audio(shared_audio / CLIP)
    return [
        AnswerRequest(question="What is said?", audios=[clip], max_new_tokens=24),
        AnswerRequest(question="What is the capital of France?", max_new_tokens=24),
        AnswerRequest(question="Short.", audios=[clip[: SAMPLE_RATE // 2]], max_new_tokens=24),
        AnswerRequest(
            question="Compare them.",
            audios=[clip, clip[: 2 * SAMPLE_RATE]],
            history=[Turn("Who speaks?", "A man.", audio=clip[SAMPLE_RATE:])],
            max_new_tokens=24,
        ),
        AnswerRequest(question="A longer typed question " * 12, max_new_tokens=9),
    ]


def collect(items: Iterator[str | GenerationStats]) -> Answer:
    text, stats = "", None
    for item in items:
        if isinstance(item, GenerationStats):
            stats = item
        else:
            text += item
    assert stats is not None
    return text, stats


def alone(backend: Qwen2AudioBackend, requests: list[AnswerRequest]) -> list[Answer]:
    """Each request by itself: the engine never has more than one row."""
    return [collect(backend.answer(request)) for request in requests]


def together(engine: BatchEngine, backend: Qwen2AudioBackend, requests: list[Any]) -> list[Answer]:
    """All requests read at once, from threads, through a backend on `engine`."""
    batched = Qwen2AudioBackend(backend.model, backend.processor, backend.device, engine)
    answers: list[Answer | None] = [None] * len(requests)

    def read(i: int) -> None:
        answers[i] = collect(batched.answer(requests[i]))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(answer is not None for answer in answers)
    return [a for a in answers if a is not None]


class Counting:
    """The real runner, counting the rows of each decoding step."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.seq_dim = real.seq_dim
        self.max_batched_length = real.max_batched_length
        self.batch_sizes: list[int] = []
        self.fail_prefill_of: int | None = None

    def prefill(self, prompt: Any) -> Prefilled:
        if prompt["input_ids"].shape[-1] == self.fail_prefill_of:
            raise RuntimeError("this row's input breaks the model")
        return self.real.prefill(prompt)

    def text_prompt(self, length: int) -> Any:
        return self.real.text_prompt(length)

    def decode(self, tokens: Any, cache: Any, mask: Any, positions: Any) -> Any:
        self.batch_sizes.append(int(tokens.shape[0]))
        return self.real.decode(tokens, cache, mask, positions)

    def shift(self, cache: Any, offset: int) -> Any:
        return self.real.shift(cache, offset)


def test_answers_in_a_batch_are_the_answers_alone(
    backend: Qwen2AudioBackend, requests: list[AnswerRequest]
) -> None:
    expected = alone(backend, requests)
    counting = Counting(runner(backend.model))
    engine = BatchEngine(counting, max_batch=8)
    engine.start()
    try:
        got = together(engine, backend, requests)
    finally:
        engine.stop()
    assert got == expected
    # They really ran together: some steps decoded several rows at once.
    assert max(counting.batch_sizes) >= 3
    # Rows of different lengths ended on their own: 24 tokens, and 9 for the last.
    assert [stats.completion_tokens for _, stats in got] == [24, 24, 24, 24, 9]


def test_a_row_that_joins_mid_decoding_does_not_wait_for_the_batch(
    backend: Qwen2AudioBackend, requests: list[AnswerRequest]
) -> None:
    long, short = requests[0], requests[1]
    long = AnswerRequest(question=long.question, audios=long.audios, max_new_tokens=200)
    expected = alone(backend, [long, short])
    counting = Counting(runner(backend.model))
    engine = BatchEngine(counting, max_batch=8)
    engine.start()
    batched = Qwen2AudioBackend(backend.model, backend.processor, backend.device, engine)
    try:
        first = batched.answer(long)
        text = ""
        while len(counting.batch_sizes) < 20:  # the long row is well into its answer
            piece = next(first)
            assert isinstance(piece, str)
            text += piece
        joined_at = len(counting.batch_sizes)
        second = collect(batched.answer(short))
        finished_at = len(counting.batch_sizes)
        first_rest = collect(first)
    finally:
        engine.stop()
    assert (text + first_rest[0], first_rest[1]) == expected[0]
    assert second == expected[1]
    # The short row (24 tokens) joined and finished while the long one (200) was decoding:
    # it did not wait for the batch to end.
    assert 2 in counting.batch_sizes[joined_at:finished_at]
    assert finished_at < 150


def test_a_row_closed_mid_stream_stops_and_the_others_go_on(
    backend: Qwen2AudioBackend, requests: list[AnswerRequest]
) -> None:
    expected = alone(backend, requests[:2])
    counting = Counting(runner(backend.model))
    engine = BatchEngine(counting, max_batch=8)
    engine.start()
    batched = Qwen2AudioBackend(backend.model, backend.processor, backend.device, engine)
    try:
        canceled = batched.answer(AnswerRequest(question="Go on.", max_new_tokens=2000))
        assert next(canceled) is not None
        others = together(engine, backend, requests[:2])
        canceled.close()  # what a stage does on a cancel or a time limit
        steps = len(counting.batch_sizes)
        # Nothing is left running: the engine goes idle.
        assert engine.running == 0 or wait_idle(engine)
    finally:
        engine.stop()
    assert others == expected
    assert steps < 2000


def wait_idle(engine: BatchEngine, seconds: float = 5.0) -> bool:
    event = threading.Event()
    for _ in range(int(seconds * 20)):
        if engine.running == 0:
            return True
        event.wait(0.05)
    return False


def test_a_row_whose_input_breaks_fails_alone(
    backend: Qwen2AudioBackend, requests: list[AnswerRequest]
) -> None:
    expected = alone(backend, requests[:2])
    counting = Counting(runner(backend.model))
    broken = AnswerRequest(question="Break " * 7, max_new_tokens=8)
    prompt = backend._generation(
        [{"role": "user", "content": [{"type": "text", "text": broken.question}]}],
        [],
        max_new_tokens=8,
        temperature=0.0,
    )
    counting.fail_prefill_of = prompt.prompt_tokens
    engine = BatchEngine(counting, max_batch=8)
    engine.start()
    batched = Qwen2AudioBackend(backend.model, backend.processor, backend.device, engine)
    try:
        survivors = batched.answer(requests[0])
        assert next(survivors) is not None
        with pytest.raises(ModelError, match="this row's input breaks the model"):
            collect(batched.answer(broken))
        rest = collect(survivors)
        second = collect(batched.answer(requests[1]))
    finally:
        engine.stop()
    assert rest[1] == expected[0][1]
    assert second == expected[1]


def test_a_failing_step_fails_its_rows_and_the_engine_serves_the_next(
    backend: Qwen2AudioBackend, requests: list[AnswerRequest]
) -> None:
    from tests.fakes.failing_runner import FAILURE, DecodeFails

    engine = BatchEngine(DecodeFails(runner(backend.model), steps=2), max_batch=8)
    engine.start()
    batched = Qwen2AudioBackend(backend.model, backend.processor, backend.device, engine)
    try:
        with pytest.raises(ModelError, match=FAILURE):
            collect(batched.answer(requests[1]))
        # The next job is prefilled, makes its first tokens, and fails the same way.
        with pytest.raises(ModelError, match=FAILURE):
            collect(batched.answer(requests[0]))
    finally:
        engine.stop()


def test_a_closed_stream_ticks_while_it_waits(backend: Qwen2AudioBackend) -> None:
    # An engine that never runs: the reader still wakes, with empty pieces.
    engine = BatchEngine(runner(backend.model), max_batch=1)
    batched = Qwen2AudioBackend(backend.model, backend.processor, backend.device, engine)
    stream = batched.answer(AnswerRequest(question="Anyone?", max_new_tokens=4))
    assert [next(stream) for _ in range(3)] == ["", "", ""]
    stream.close()


def test_sampling_is_per_row_and_reproducible_with_a_seed(backend: Qwen2AudioBackend) -> None:
    from worker.batching.engine import Generation
    from worker.batching.sampling import Sampling

    engine = BatchEngine(runner(backend.model), max_batch=4)
    engine.start()
    tokenizer = backend.processor.tokenizer
    prompt = backend._generation(
        [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        [],
        max_new_tokens=16,
        temperature=1.0,
    ).prompt

    def sample(seed: int) -> RowStream:
        return engine.submit(
            Generation(
                prompt=prompt,
                prompt_tokens=int(prompt["input_ids"].shape[-1]),
                max_new_tokens=16,
                sampling=Sampling(temperature=1.0),
                stop_ids=frozenset(),
                decode=lambda ids: str(tokenizer.decode(ids)),
                seed=seed,
            )
        )

    try:
        rows = [sample(seed) for seed in (1, 2, 1)]
        texts = [collect(row)[0] for row in rows]
    finally:
        engine.stop()
    assert texts[0] == texts[2] != texts[1]
    assert all(texts)
