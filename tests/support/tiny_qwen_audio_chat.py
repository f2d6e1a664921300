"""A Qwen-Audio-Chat checkpoint whose remote code is the stand-in in tests/fakes/qwen_audio_chat.

The folder holds what the real snapshot holds: config and tokenizer files naming their classes
in `auto_map`, the Python modules transformers loads with `trust_remote_code=True`, and weights
(random; the stand-in's answers are scripted). The weights are written by the pinned
environment's Python (`python -m tests.support.tiny_qwen_audio_chat FOLDER`), since the code
is meant for transformers < 4.54 only.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tests.support.processes import REPO_ROOT
from tests.support.tiny_qwen2_audio import run_builder

STAND_IN = REPO_ROOT / "tests" / "fakes" / "qwen_audio_chat"
# The environment `make qwen-audio-chat-env` builds; AUDIOCHAT_QWEN_AUDIO_CHAT_PYTHON overrides.
DEFAULT_VENV = REPO_ROOT / ".cache" / "venv-qwen-audio-chat"


def pinned_python() -> Path:
    """The Python of the environment with transformers < 4.54."""
    override = os.environ.get("AUDIOCHAT_QWEN_AUDIO_CHAT_PYTHON")
    return Path(override) if override else DEFAULT_VENV / "bin" / "python"


def build(folder: Path, python: Path, env: dict[str, str] | None = None) -> Path:
    """Copy the stand-in's files into `folder` and save random weights beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    _copy_stand_in(folder)
    run_builder(str(python), "tests.support.tiny_qwen_audio_chat", folder, env)
    # save_pretrained rewrote the configs from defaults; the snapshot's own files win.
    _copy_stand_in(folder)
    return folder


def _copy_stand_in(folder: Path) -> None:
    for source in STAND_IN.iterdir():
        if source.suffix in (".py", ".json"):
            shutil.copy(source, folder / source.name)


def _save(folder: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    model.save_pretrained(folder)


if __name__ == "__main__":
    _save(Path(sys.argv[1]))
