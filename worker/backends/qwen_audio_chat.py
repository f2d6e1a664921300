"""Qwen-Audio-Chat (v1) through the code that ships in its checkpoint (`trust_remote_code`).

That code was written for transformers 4.32 and breaks on 5.x, so this backend runs in its own
environment (deploy/requirements-qwen-audio-chat.txt) and refuses to load elsewhere. What the
real code does, and this backend relies on (tests/integration/test_qwen_audio_chat.py runs it):

- Audio goes in only as a file path inside the query (`<audio>path</audio>`), which the
  tokenizer reads with the `ffmpeg` command (twice per request), so each audio input is written
  to a temporary WAV, and its samples are handed to the tokenizer's loader from memory.
  The same tags in any text would make it read whatever path or URL they name, so every text
  that reaches the query is defused first (`defuse`). Clips under 30 ms break its audio encoder
  and are padded with silence.
- Its mel filterbank is read from beside the module transformers imports the code from (the
  modules cache, not the checkpoint): the model class's `from_pretrained` copies it there. So
  the tokenizer cannot process audio before the model is loaded, and the modules cache must be
  writable.
- `make_context` returns three values (text, tokens, `audio_info`); `chat_stream` unpacks two
  and drops the audio. This backend makes the context with `make_context` in the stage's thread
  and hands it to the worker's batch engine (worker/batching/), which runs the checkpoint's own
  forward passes (qwen_audio_chat_runner.py). `chat()` drops the last token of an answer cut at
  `max_new_tokens`; this backend does not.
- Its tokenizer cannot decode the 782 ids past its last token (padding of the embedding), and
  raises on an audio tag without `audio_info`; generated ids like these are dropped, with the
  chat control tokens. Timestamps (`<|2.33|>`) stay in the text as the model gives them.
- Precision comes from the `bf16`/`fp32` flags of its config, not from `torch_dtype`.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from shared.config import Settings
from worker.audio import SAMPLE_RATE, Audio
from worker.backends.base import AnswerRequest, GenerationStats, TranscriptPiece
from worker.backends.checkpoint import CheckpointMissing, checkpoint_folder, log_loaded
from worker.backends.prompting import (
    SYSTEM_PROMPT,
    check_one_window,
    fits,
    heard_audio,
    question_text,
    seconds,
    transcript_pieces,
    transcript_token_budget,
    with_hints,
)
from worker.backends.prompting import defuse as defuse_forms
from worker.backends.qwen_audio_chat_runner import QwenAudioChatRunner
from worker.batching.capacity import start_engine
from worker.batching.engine import BatchEngine, Generation, stream
from worker.batching.sampling import Sampling
from worker.gpu import (
    choose_device,
    describe_placement,
    device_map,
    quantization_config,
    torch_dtype,
    uses_gpu,
)

logger = logging.getLogger(__name__)

# Releases whose API the checkpoint's code works with: from 4.32 up to, not including, 4.54.
WORKING_TRANSFORMERS = ((4, 32), (4, 54))
# The transcription question of the original Qwen-Audio-Chat demos.
TRANSCRIBE_QUESTION = "what does the person say?"
# The tags that make the tokenizer read a file or URL: never let them through from any text.
AUDIO_TAGS = ("<audio>", "</audio>")
# The audio encoder's convolutions need at least 3 mel frames (30 ms at 16 kHz).
MIN_AUDIO_SAMPLES = 480


class IncompatibleTransformers(RuntimeError):
    """The installed transformers is one the checkpoint's code does not work with."""


def check_transformers(version: str) -> None:
    """Refuse a transformers release outside the range the remote code works with."""
    release = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    low, high = WORKING_TRANSFORMERS
    if not low <= release < high:
        raise IncompatibleTransformers(
            f"qwen-audio-chat needs transformers >=4.32,<4.54 (its checkpoint's code breaks on "
            f"newer releases), but {version} is installed: run this worker in the environment "
            "of deploy/requirements-qwen-audio-chat.txt (docs/gpu.md)"
        )


def precision_flags(device: str) -> dict[str, bool]:
    """The config flags the checkpoint's code sets its precision from (it ignores `torch_dtype`
    once built): bf16 on a GPU, as the checkpoint was trained; float32 on the CPU."""
    return {"bf16": True} if uses_gpu(device) else {"fp32": True}


def defuse(text: str) -> str:
    """`text` with its audio tags broken: the tokenizer no longer takes `<audio>/etc/passwd</audio>`
    or `<audio>http://…</audio>` as audio to load."""
    return defuse_forms(text, AUDIO_TAGS)


class AnswerText:
    """The tokenizer as the streamer sees it. Timestamps such as `<|2.33|>` stay in the text;
    the chat control tokens, audio tags and ids the tokenizer has no token for are dropped, as
    the checkpoint's own decoder would raise on them."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._dropped = {
            tokenizer.im_start_id,
            tokenizer.im_end_id,
            tokenizer.eod_id,
            tokenizer.audio_start_id,
            tokenizer.audio_end_id,
            tokenizer.audio_pad_id,
        }
        self._size = len(tokenizer)

    def decode(self, token_ids: Sequence[int]) -> str:
        kept = [i for i in token_ids if 0 <= i < self._size and i not in self._dropped]
        return str(self._tokenizer.decode(kept, skip_special_tokens=False, errors="replace"))


def write_wav(folder: Path, name: str, audio: Audio) -> tuple[str, Audio]:
    """`audio` as a 16 kHz 16-bit WAV file in `folder`, for the model to read: its path, and the
    samples the checkpoint's loader decodes from it. Audio that came from 16-bit samples is
    written back exactly; clips the encoder cannot take are padded with silence to its
    shortest input."""
    path = folder / f"{name}.wav"
    if len(audio) < MIN_AUDIO_SAMPLES:
        audio = np.pad(audio, (0, MIN_AUDIO_SAMPLES - len(audio)))
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    # As the checkpoint's `load_audio` makes them of ffmpeg's 16-bit output.
    return str(path), pcm.astype(np.float32) / 32768.0


class AudioFiles:
    """The audio of the requests in flight, as the checkpoint's code takes it: WAV files named
    in `<audio>` tags. Its tokenizer reads each file with an ffmpeg process, twice a request
    (for the turn, then for the whole context); installed as its `load_audio`, this hands it
    the same samples from memory, and leaves any other path to the original."""

    def __init__(self, tokenizer: Any) -> None:
        self._samples: dict[str, Audio] = {}
        module = sys.modules[type(tokenizer).__module__]
        original = getattr(module, "load_audio")  # noqa: B009 (set below, read the same way)

        def load_audio(file: str, sr: int = SAMPLE_RATE) -> Any:
            samples = self._samples.get(file)
            return original(file, sr) if samples is None or sr != SAMPLE_RATE else samples

        setattr(module, "load_audio", load_audio)  # noqa: B010 (the checkpoint's own module)

    @contextmanager
    def request(self) -> Iterator[Callable[[str, Audio], str]]:
        """`write(name, audio) -> path` for one request; its files go when the block ends."""
        written: list[str] = []
        with tempfile.TemporaryDirectory(prefix="audiochat-qwen-") as tmp:

            def write(name: str, audio: Audio) -> str:
                path, samples = write_wav(Path(tmp), name, audio)
                self._samples[path] = samples
                written.append(path)
                return path

            try:
                yield write
            finally:
                for path in written:
                    self._samples.pop(path, None)


class QwenAudioChatBackend:
    name = "qwen-audio-chat"
    hears_audio = True
    max_audio_seconds = 30.0
    # One 24 GB card holds the 16.5 GB model and the caches of about this many typical rows.
    default_concurrency = 8

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        remote: ModuleType,
        device: str,
        engine: BatchEngine,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        # The checkpoint's own module: `make_context` and `get_stop_words_ids` come from it.
        self.remote = remote
        self.device = device
        self.engine = engine
        self.concurrency = engine.max_batch
        self._decoder = AnswerText(tokenizer)
        self._audio = AudioFiles(tokenizer)
        config = model.generation_config
        self._stop_ids = frozenset(
            token
            for words in remote.get_stop_words_ids(config.chat_format, tokenizer)
            for token in words
        ) | {tokenizer.eod_id}

    @classmethod
    def load(cls, settings: Settings) -> QwenAudioChatBackend:
        """Load the checkpoint in `AUDIOCHAT_MODEL_PATH` with its own code, offline."""
        import transformers

        check_transformers(transformers.__version__)
        folder = checkpoint_folder(settings)
        device = choose_device(settings.device)
        started = time.perf_counter()
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            folder, trust_remote_code=True, local_files_only=True
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder,
            trust_remote_code=True,
            local_files_only=True,
            device_map=device_map(device),
            quantization_config=quantization_config(settings.quantization, device),
            torch_dtype=torch_dtype(device),
            **precision_flags(device),
        )
        model.eval()  # type: ignore[no-untyped-call]
        backend = cls.serving(model, tokenizer, settings, describe_placement(model, device))
        log_loaded(backend, folder, settings, started)
        return backend

    @classmethod
    def serving(
        cls, model: Any, tokenizer: Any, settings: Settings, device: str
    ) -> QwenAudioChatBackend:
        """The backend around a loaded model, its batch engine sized and started."""
        remote = checkpoint_module(model)
        engine = start_engine(QwenAudioChatRunner(model), settings, cls.default_concurrency, device)
        return cls(model, tokenizer, remote, device, engine)

    def transcribe(
        self, audio: Audio, *, language: str | None, prompt: str | None = None
    ) -> Iterator[TranscriptPiece]:
        check_one_window(audio, self.max_audio_seconds)
        with self._audio.request() as write:
            query = self.tokenizer.from_list_format(
                [
                    {"audio": write("audio", audio)},
                    {"text": defuse(with_hints(TRANSCRIBE_QUESTION, language, prompt))},
                ]
            )
            generation = self._generation(
                query, [], max_new_tokens=transcript_token_budget(seconds(audio)), temperature=0.0
            )
        return transcript_pieces(stream(self.engine, generation))

    def answer(self, request: AnswerRequest) -> Iterator[str | GenerationStats]:
        with self._audio.request() as write:
            history: list[tuple[str, str]] = []
            for i, turn in enumerate(request.history):
                items: list[dict[str, str]] = []
                if turn.audio is not None and fits(turn.audio, self.max_audio_seconds):
                    items.append({"audio": write(f"turn-{i}", turn.audio)})
                items.append({"text": defuse(turn.question)})
                history.append((self.tokenizer.from_list_format(items), defuse(turn.answer)))
            current = heard_audio(request, self.max_audio_seconds)
            items = [{"audio": write(f"part-{i}", audio)} for i, audio in enumerate(current)]
            text = defuse(question_text(request, bool(current)))
            if text:
                items.append({"text": text})
            query = self.tokenizer.from_list_format(items)
            generation = self._generation(
                query,
                history,
                max_new_tokens=request.max_new_tokens,
                temperature=request.temperature,
            )
        return stream(self.engine, generation)

    def _generation(
        self,
        query: str,
        history: list[tuple[str, str]],
        *,
        max_new_tokens: int,
        temperature: float,
    ) -> Generation:
        """The request for the engine; the audio files must exist until it is made (the
        checkpoint's tokenizer reads them in `make_context`)."""
        import torch

        config = self.model.generation_config
        _raw_text, context_tokens, audio_info = self.remote.make_context(
            self.tokenizer,
            query,
            history=history,
            system=SYSTEM_PROMPT,
            max_window_size=config.max_window_size,
            chat_format=config.chat_format,
        )
        return Generation(
            prompt={
                "input_ids": torch.tensor([context_tokens], device=self.model.device),
                "audio_info": audio_info,
            },
            prompt_tokens=len(context_tokens),
            max_new_tokens=max_new_tokens,
            sampling=Sampling.from_config(config, temperature),
            stop_ids=self._stop_ids,
            decode=self._decoder.decode,
        )


def checkpoint_module(model: Any) -> ModuleType:
    """The checkpoint's own module the model class came from, checked for what this backend
    calls and for the filterbank its audio code reads from beside it."""
    remote = sys.modules[type(model).__module__]
    for name in ("make_context", "get_stop_words_ids"):
        if not hasattr(remote, name):
            raise IncompatibleTransformers(f"the checkpoint's code has no {name}()")
    # The audio code reads its filterbank from beside the imported module, where the model
    # class's from_pretrained copies it; without it the first audio job would fail.
    filters = Path(str(remote.__file__)).with_name("mel_filters.npz")
    if not filters.is_file():
        raise CheckpointMissing(
            f"{filters} is missing: the checkpoint folder needs the snapshot's mel_filters.npz "
            "and the transformers modules cache (HF_MODULES_CACHE) must be writable"
        )
    return remote
