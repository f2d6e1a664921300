"""Token streaming from a transformers `generate` running in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from shared.errors import ModelError
from worker.backends.base import GenerationStats


class _StopWhenSet(StoppingCriteria):
    """Stops generation between tokens once the consumer has gone away."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        return self._event.is_set()


# Below this, sampling is greedy decoding in all but name, and dividing the logits by the
# temperature overflows them to inf (1e-40, which the API accepts, failed every job it met).
GREEDY_BELOW = 1e-4


def sampling_options(temperature: float) -> dict[str, Any]:
    """`generate`'s sampling arguments for a job's temperature: greedy at (nearly) zero."""
    if temperature < GREEDY_BELOW:
        return {"do_sample": False}
    return {"do_sample": True, "temperature": temperature}


def stream_generate(
    model: Any,
    tokenizer: Any,
    inputs: dict[str, Any],
    *,
    max_new_tokens: int,
    temperature: float,
    **generate_kwargs: Any,
) -> Iterator[str | GenerationStats]:
    """Yield non-empty text pieces as `model.generate` produces them, then GenerationStats.

    An exception inside `generate` ends the stream and is raised here as ModelError, so a
    failing model fails its job at once instead of leaving the consumer waiting.
    """
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    stop = threading.Event()
    outcome: dict[str, Any] = {}
    sampling = sampling_options(temperature)

    def run() -> None:
        try:
            outcome["output"] = model.generate(
                **inputs,
                streamer=streamer,
                max_new_tokens=max_new_tokens,
                stopping_criteria=StoppingCriteriaList([_StopWhenSet(stop)]),
                **sampling,
                **generate_kwargs,
            )
        except BaseException as exc:
            outcome["error"] = exc
            # Not `streamer.end()`: it decodes what is left, and a decoder that raised once
            # would raise again, here, leaving the consumer waiting for ever.
            streamer.text_queue.put(streamer.stop_signal)

    thread = threading.Thread(target=run, name="generate", daemon=True)
    thread.start()
    try:
        for piece in streamer:
            if piece:
                yield piece
    finally:
        stop.set()
        thread.join()
    if "error" in outcome:
        error = outcome["error"]
        raise ModelError(f"generation failed: {type(error).__name__}: {error}") from error
    prompt_tokens = int(inputs["input_ids"].shape[-1])
    completion_tokens = int(outcome["output"].shape[-1]) - prompt_tokens
    yield GenerationStats(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason="length" if completion_tokens >= max_new_tokens else "stop",
    )
