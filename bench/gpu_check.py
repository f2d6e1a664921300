"""The GPU check: both Qwen models at their real sizes, random weights, through the real backends.

For each model this builds the model with random weights directly on the GPU (nothing written to
disk), hands it to the backend as a worker's `load` would (`serving`: the batch engine sized by
the card's measured free memory), and records for a 30 s clip of speech: build time, weights
and peak GPU memory, time to the first streamed text, decoding tokens per second alone, and at
batch 1, 4, 8 and 16: aggregate decoding tokens per second, time to first text, each job's time
against its time alone, and peak memory. The card is limited to 24 GiB
(`torch.cuda.set_per_process_memory_fraction`), as the design's cards are.

qwen2-audio runs in this Python (transformers 5); qwen-audio-chat in a child process with the
pinned transformers (its checkpoint's code), from `--pinned-path` (wheels installed with
`pip --target`) or `--pinned-python`.

    python -m bench.gpu_check --out DIR                  # on a CUDA machine
    python -m bench.gpu_check --tiny --device cpu        # the toy models: a check that it runs

On the lent GPU machine, which has torch and transformers but not this project's other packages
and no network: `make gpu-bundle` here first (wheels, the checkpoint's code and the speech clip in
`.gpu/`, about 20 MiB), then the command docs/gpu.md gives. Prints JSON; never part of
`make test`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE = REPO_ROOT / ".gpu"
SHARED = REPO_ROOT.parent / "shared"
MODELS = ("qwen2-audio", "qwen-audio-chat")
QUESTION = "Describe the speaker and what they say."


def speech(seconds: float, bundle: Path) -> Any:
    """`seconds` of real speech: the bundle's clip, or the shared clips decoded, repeated."""
    clip = bundle / "speech.npy"
    if clip.exists():
        samples = np.load(clip)
    else:
        from worker.audio import decode_audio

        found = sorted((SHARED / "audio").glob("*.*"))
        samples = np.concatenate([decode_audio(p) for p in found if p.suffix != ".md"])
    repeats = int(np.ceil(seconds * 16_000 / len(samples)))
    return np.tile(samples, repeats)[: int(seconds * 16_000)].astype(np.float32)


def _build(model: str, tiny: bool, device: str, code: Path) -> tuple[Any, Any]:
    """(model, processor or tokenizer), the model random, made on `device`."""
    if model == "qwen2-audio":
        from testbed import tiny_qwen2_audio

        processor = tiny_qwen2_audio.build_processor(full_size=not tiny)
        return tiny_qwen2_audio.build_model(processor, full_size=not tiny, device=device), processor
    from testbed import tiny_qwen_audio_chat

    return tiny_qwen_audio_chat.build_in_memory(code, full_size=not tiny, device=device)


def _backend(model: str, built: Any, extra: Any, device: str, concurrency: int) -> Any:
    from shared.config import Settings

    settings = Settings(model=model, device=device, worker_concurrency=concurrency)
    if model == "qwen2-audio":
        from worker.backends.qwen2_audio import Qwen2AudioBackend

        return Qwen2AudioBackend.serving(built, extra, settings, device)
    from worker.backends.qwen_audio_chat import QwenAudioChatBackend

    return QwenAudioChatBackend.serving(built, extra, settings, device)


def _answer(backend: Any, request: Any, started: float) -> dict[str, float]:
    """One answer, timed from `started`: first text, end, and tokens."""
    from worker.backends.base import GenerationStats

    first, tokens = None, 0
    for item in backend.answer(request):
        if isinstance(item, GenerationStats):
            tokens = item.completion_tokens
        elif item and first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    assert first is not None, "the model streamed no text"
    return {"first_s": first - started, "end_s": ended - started, "tokens": tokens}


def _batch(backend: Any, request: Any, size: int) -> dict[str, Any]:
    """`size` identical requests at once: aggregate and per-job figures."""
    import torch

    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    results: list[dict[str, float]] = []
    started = time.perf_counter()
    threads = [
        threading.Thread(target=lambda: results.append(_answer(backend, request, started)))
        for _ in range(size)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ends = sorted(r["end_s"] for r in results)
    firsts = sorted(r["first_s"] for r in results)
    return {
        "batch": size,
        "jobs": len(results),
        "wall_s": round(wall, 3),
        "decode_tokens_per_s": round(sum(r["tokens"] for r in results) / wall, 1),
        "first_text_p50_s": round(firsts[len(firsts) // 2], 3),
        "job_p50_s": round(ends[len(ends) // 2], 3),
        "job_max_s": round(ends[-1], 3),
        "peak_bytes": torch.cuda.max_memory_allocated() if gpu else None,
    }


def measure(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """Everything for one model, in this process."""
    import torch
    import transformers

    from worker.backends.base import AnswerRequest

    gpu = args.device != "cpu"
    total = torch.cuda.get_device_properties(0).total_memory if gpu else None
    if gpu and total:
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.card_gib * 2**30 / total))
    started = time.perf_counter()
    built, extra = _build(model, args.tiny, args.device, args.code)
    if gpu:
        torch.cuda.synchronize()
    build_s = time.perf_counter() - started
    weights = torch.cuda.memory_allocated() if gpu else None
    backend = _backend(model, built, extra, args.device, max(args.levels))
    request = AnswerRequest(
        question=QUESTION, audios=[speech(30.0, args.bundle)], max_new_tokens=args.tokens
    )
    try:
        _answer(backend, AnswerRequest(question="warm up", max_new_tokens=4), time.perf_counter())
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        alone = _answer(backend, request, time.perf_counter())
        alone_peak = torch.cuda.max_memory_allocated() if gpu else None
        levels = [_batch(backend, request, size) for size in args.levels]
    finally:
        backend.engine.stop()
    decoding = alone["end_s"] - alone["first_s"]
    for level in levels:
        level["job_p50_vs_alone"] = round(level["job_p50_s"] / alone["end_s"], 2)
    return {
        "model": model,
        "sizes": "tiny" if args.tiny else "real",
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
        "card_limit_gib": args.card_gib if gpu else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "build_s": round(build_s, 1),
        "weights_bytes": weights,
        "concurrency": backend.concurrency,
        "cache_tokens": backend.engine.max_cache_tokens,
        "audio_s": 30.0,
        "tokens": args.tokens,
        "alone": {
            "first_text_s": round(alone["first_s"], 3),
            "total_s": round(alone["end_s"], 3),
            "tokens": alone["tokens"],
            "decode_tokens_per_s": round((alone["tokens"] - 1) / decoding, 1),
            "peak_bytes": alone_peak,
        },
        "levels": levels,
    }


def _run_model(model: str, argv: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """`measure(model)` in a child process: qwen-audio-chat with the pinned transformers."""
    python, path = sys.executable, str(REPO_ROOT)
    if model == "qwen-audio-chat":
        if args.pinned_python:
            python = str(args.pinned_python)
        elif args.pinned_path:
            path = os.pathsep.join([str(args.pinned_path), path])
        else:
            python = str(REPO_ROOT / ".cache" / "venv-qwen-audio-chat" / "bin" / "python")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": tempfile.mkdtemp(prefix="gpu-check-modules-"),
    }
    command = [python, "-m", "bench.gpu_check", *argv, "--only-model", model]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    sys.stderr.write(done.stderr[-4000:])
    if done.returncode != 0:
        return {"model": model, "error": done.stderr[-2000:] or done.stdout[-2000:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _numbers(value: str) -> list[int]:
    return [int(part) for part in value.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the toy sizes")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--card-gib", type=float, default=24.0, help="the card to emulate")
    parser.add_argument(
        "--levels", default="1,4,8,16", type=lambda v: [int(x) for x in v.split(",")]
    )
    parser.add_argument("--tokens", type=int, default=128, help="tokens per answer")
    parser.add_argument("--bundle", type=Path, default=BUNDLE)
    parser.add_argument("--code", type=Path, help="the checkpoint's code (qwen-audio-chat)")
    parser.add_argument("--pinned-path", type=Path, help="where the pinned wheels are installed")
    parser.add_argument("--pinned-python", type=Path, help="a Python with transformers < 4.54")
    parser.add_argument("--out", type=Path, help="a folder for gpu_check.json")
    parser.add_argument("--only-model", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.code is None:
        bundled = args.bundle / "qwen-audio-chat"
        args.code = bundled if bundled.exists() else SHARED / "models" / "qwen-audio-chat"
    if args.only_model:
        print(json.dumps(measure(args.only_model, args)))
        return
    argv = sys.argv[1:]
    started = time.perf_counter()
    results = [_run_model(model, argv, args) for model in MODELS]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": round(time.perf_counter() - started, 1),
        "models": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
