"""Qwen2-Audio-7B-Instruct through transformers' own classes, from a local checkpoint.

`Qwen2AudioProcessor` turns the chat into tokens: its chat template writes one `<|AUDIO|>` per
audio input and the processor expands each into as many tokens as the audio encoder makes of
it. The audio goes in as `audio=` (the `audios=` of older releases is gone) at 16 kHz, the rate
worker/audio.py decodes to; the feature extractor (128 mel bins for the real model) comes from
the checkpoint. The encoder hears at most 30 s of each input.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from shared.config import Settings
from shared.errors import ModelError
from worker.audio import SAMPLE_RATE, Audio
from worker.backends.base import AnswerRequest, GenerationStats, TranscriptPiece
from worker.backends.checkpoint import checkpoint_folder, log_loaded
from worker.backends.prompting import (
    SYSTEM_PROMPT,
    check_one_window,
    defuse,
    fits,
    heard_audio,
    question_text,
    seconds,
    transcript_pieces,
    transcript_token_budget,
    with_hints,
)
from worker.batching.capacity import start_engine
from worker.batching.engine import BatchEngine, Generation, stream
from worker.batching.hf_runner import (
    DecoderRunner,
    PrefillForward,
    forward_with_cache,
    output_cache,
)
from worker.batching.sampling import Sampling
from worker.gpu import (
    choose_device,
    describe_placement,
    device_map,
    quantization_config,
    torch_dtype,
)

logger = logging.getLogger(__name__)

TRANSCRIBE_INSTRUCTION = (
    "Transcribe the speech in this audio word for word. Reply with the transcript only."
)

Message = dict[str, Any]


def _user(audio_count: int, text: str) -> Message:
    content: list[dict[str, str]] = [{"type": "audio"} for _ in range(audio_count)]
    if text:
        content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


class Qwen2AudioBackend:
    name = "qwen2-audio"
    hears_audio = True
    max_audio_seconds = 30.0
    # One 24 GB card holds the 16.8 GB model and the caches of about this many typical rows.
    default_concurrency = 8

    def __init__(self, model: Any, processor: Any, device: str, engine: BatchEngine) -> None:
        self.model = model
        self.processor = processor
        # Where the weights are, as the heartbeat reports it (`cuda:0`, `cpu`, `cuda:0+cpu`).
        self.device = device
        self.engine = engine
        self.concurrency = engine.max_batch
        tokenizer = processor.tokenizer
        config = model.generation_config
        ends = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
        self._stop_ids = frozenset(ends if isinstance(ends, list) else [ends])
        # Text from users must not smuggle in the chat's control tokens or audio placeholders.
        self._special = tuple(tokenizer.all_special_tokens)
        # A fast tokenizer raises "Already borrowed" if two threads use it at once.
        self._processing = threading.Lock()

    @classmethod
    def load(cls, settings: Settings) -> Qwen2AudioBackend:
        """Load the checkpoint in `AUDIOCHAT_MODEL_PATH` on `AUDIOCHAT_DEVICE`, offline."""
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

        folder = checkpoint_folder(settings)
        device = choose_device(settings.device)
        started = time.perf_counter()
        processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
            folder, local_files_only=True
        )
        rate = processor.feature_extractor.sampling_rate
        if rate != SAMPLE_RATE:
            raise ModelError(f"the checkpoint's feature extractor expects {rate} Hz, not 16 kHz")
        model = Qwen2AudioForConditionalGeneration.from_pretrained(
            folder,
            local_files_only=True,
            dtype=torch_dtype(device),
            device_map=device_map(device),
            quantization_config=quantization_config(settings.quantization, device),
        )
        model.eval()  # type: ignore[no-untyped-call]
        backend = cls.serving(model, processor, settings, describe_placement(model, device))
        log_loaded(backend, folder, settings, started)
        return backend

    @classmethod
    def serving(
        cls, model: Any, processor: Any, settings: Settings, device: str
    ) -> Qwen2AudioBackend:
        """The backend around a loaded model, its batch engine sized and started."""
        engine = start_engine(runner(model), settings, cls.default_concurrency, device)
        return cls(model, processor, device, engine)

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None
    ) -> Iterator[TranscriptPiece]:
        check_one_window(audio, self.max_audio_seconds)
        instruction = self._defuse(with_hints(TRANSCRIBE_INSTRUCTION, language, prompt))
        generation = self._generation(
            [_user(1, instruction)],
            [audio],
            max_new_tokens=transcript_token_budget(seconds(audio)),
            temperature=0.0,
        )
        return transcript_pieces(stream(self.engine, generation))

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        messages: list[Message] = []
        audios: list[Audio] = []
        for turn in request.history:
            heard = turn.audio is not None and fits(turn.audio, self.max_audio_seconds)
            if heard and turn.audio is not None:
                audios.append(turn.audio)
            messages.append(_user(int(heard), self._defuse(turn.question)))
            messages.append({"role": "assistant", "content": self._defuse(turn.answer)})
        current = heard_audio(request, self.max_audio_seconds)
        audios.extend(current)
        messages.append(_user(len(current), self._defuse(question_text(request, bool(current)))))
        generation = self._generation(
            messages,
            audios,
            max_new_tokens=request.max_new_tokens,
            temperature=request.temperature,
        )
        return stream(self.engine, generation)

    def _defuse(self, text: str) -> str:
        return defuse(text, self._special)

    def _generation(
        self,
        messages: list[Message],
        audios: list[Audio],
        *,
        max_new_tokens: int,
        temperature: float,
    ) -> Generation:
        conversation = [{"role": "system", "content": SYSTEM_PROMPT}, *messages]
        with self._processing:
            text = self.processor.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=False
            )
            inputs = self.processor(
                text=text,
                audio=audios or None,
                sampling_rate=SAMPLE_RATE,
                return_tensors="pt",
                padding=True,
            ).to(self.model.device)
        tokenizer = self.processor.tokenizer
        return Generation(
            prompt=dict(inputs),
            prompt_tokens=int(inputs["input_ids"].shape[-1]),
            max_new_tokens=max_new_tokens,
            sampling=Sampling.from_config(self.model.generation_config, temperature),
            stop_ids=self._stop_ids,
            decode=lambda ids: str(tokenizer.decode(ids, skip_special_tokens=True)),
        )


def runner(model: Any) -> DecoderRunner:
    """Prefill with the whole model, the audio encoder included; decode with its language
    model alone."""
    from transformers import DynamicCache

    def prefill(prompt: Any) -> tuple[Any, Any]:
        out = forward_with_cache(model.model, DynamicCache(), **prompt)
        return out.last_hidden_state, output_cache(out)

    forward: PrefillForward = prefill
    return DecoderRunner(model.model.language_model, model.lm_head, forward)
