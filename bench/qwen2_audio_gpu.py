"""Qwen2-Audio at full size on one GPU: memory, time to first streamed text, tokens per second.

No download: a checkpoint with the real Qwen2-Audio-7B-Instruct's config numbers and random
weights is built in a folder (17 GB on disk, once; `--folder` reuses it), then loaded by the real
backend (worker/backends/qwen2_audio.py) as a worker would, with `AUDIOCHAT_DEVICE` and
`AUDIOCHAT_QUANTIZATION`'s choices. It answers a question about 30 s of real speech a few
times; random weights make garbage text, but the work per token is the real model's.

    python -m bench.qwen2_audio_gpu                          # bf16 on cuda:0
    python -m bench.qwen2_audio_gpu --quantization 4bit      # needs the gpu extra
    python -m bench.qwen2_audio_gpu --tiny --device cpu      # a quick check that it runs

Prints one JSON object (and writes it to `--out`). Never part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shared.config import Settings
from tests.support.tiny_qwen2_audio import save_checkpoint
from worker.audio import SAMPLE_RATE, decode_audio
from worker.backends.base import AnswerRequest, GenerationStats
from worker.backends.qwen2_audio import Qwen2AudioBackend

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "audio"


def speech(seconds: float) -> Any:
    """Real speech from ../shared/audio, repeated to `seconds`."""
    clips = [decode_audio(path) for path in sorted(SPEECH.glob("*.*")) if path.suffix != ".md"]
    joined = np.concatenate(clips)
    repeats = int(np.ceil(seconds * SAMPLE_RATE / len(joined)))
    return np.tile(joined, repeats)[: int(seconds * SAMPLE_RATE)]


def timed_answer(backend: Qwen2AudioBackend, request: AnswerRequest) -> dict[str, float]:
    started = time.perf_counter()
    first: float | None = None
    stats: GenerationStats | None = None
    for item in backend.answer(request):
        if isinstance(item, GenerationStats):
            stats = item
        elif first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    assert stats is not None and first is not None, "the model streamed no text"
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "first_text_seconds": round(first - started, 4),
        "total_seconds": round(ended - started, 4),
        # Decoding speed after the first text: the prompt (and the audio) are encoded by then.
        "tokens_per_second": round((stats.completion_tokens - 1) / (ended - first), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, help="where the random checkpoint is (or goes)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quantization", choices=["none", "8bit", "4bit"], default="none")
    parser.add_argument("--tokens", type=int, default=256, help="tokens per answer")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the toy model instead")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    folder = args.folder or Path(tempfile.mkdtemp(prefix="qwen2-audio-random-"))
    started = time.perf_counter()
    if not (folder / "config.json").exists():
        save_checkpoint(folder, full_size=not args.tiny)
    built = time.perf_counter() - started

    gpu = args.device != "cpu"
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    settings = Settings(
        model="qwen2-audio",
        model_path=str(folder),
        device=args.device,
        quantization=args.quantization,
    )
    backend = Qwen2AudioBackend.load(settings)
    loaded = time.perf_counter() - started
    weights = torch.cuda.memory_allocated() if gpu else None

    request = AnswerRequest(
        question="Describe the speaker and what they say.",
        audios=[speech(30.0)],
        max_new_tokens=args.tokens,
    )
    timed_answer(backend, AnswerRequest(question="warm up", max_new_tokens=4))
    runs = [timed_answer(backend, request) for _ in range(args.runs)]
    result = {
        "model": "qwen2-audio (random weights, real sizes)" if not args.tiny else "tiny",
        "device": backend.device,
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
        "quantization": args.quantization,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "build_seconds": round(built, 1),
        "load_seconds": round(loaded, 1),
        "weights_bytes": weights,
        "peak_bytes": torch.cuda.max_memory_allocated() if gpu else None,
        "audio_seconds": 30.0,
        "runs": runs,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
