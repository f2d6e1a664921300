"""A Qwen-Audio-Chat checkpoint built from the real checkpoint's own code, with tiny random weights.

`../shared/models/qwen-audio-chat` holds what a Qwen-Audio-Chat snapshot carries besides its
weights: the code `trust_remote_code=True` runs, the tokenizer's vocabulary, the mel filterbank
and the full-size configs. A checkpoint for the tests is those files, with the sizes its README
allows to shrink made small, and random weights saved beside them. The weights are made by the
pinned environment's Python (`python -m testbed.tiny_qwen_audio_chat FOLDER`), since the
code is meant for transformers < 4.54 only. Its text is garbage; tests compare it with what the
checkpoint's own `chat()` says for the same input, never with wording of their own.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from testbed.paths import REPO_ROOT
from testbed.tiny_qwen2_audio import run_builder

SHARED_CODE = REPO_ROOT.parent / "shared" / "models" / "qwen-audio-chat"
# The environment `make qwen-audio-chat-env` builds; AUDIOCHAT_QWEN_AUDIO_CHAT_PYTHON overrides.
DEFAULT_VENV = REPO_ROOT / ".cache" / "venv-qwen-audio-chat"
# What the snapshot holds besides its weights. README.md describes the shared folder, not a
# checkpoint, and is left out.
SNAPSHOT_FILES = (
    "config.json",
    "configuration_qwen.py",
    "cpp_kernels.py",
    "generation_config.json",
    "LICENSE",
    "mel_filters.npz",
    "modeling_qwen.py",
    "NOTICE",
    "qwen.tiktoken",
    "qwen_generation_utils.py",
    "audio.py",
    "tokenization_qwen.py",
    "tokenizer_config.json",
)
# Only the sizes the shared README allows to shrink. `vocab_size` (the tokenizer's ids), the
# audio encoder's `n_mels` and `n_ctx` (30-second windows) keep their real values.
TINY_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "kv_channels": 16,
    "num_hidden_layers": 2,
}
TINY_AUDIO = {"n_state": 64, "n_head": 4, "n_layer": 2, "output_dim": 64}


class SharedCodeMissing(RuntimeError):
    """`../shared/models/qwen-audio-chat` is not beside the checkout."""


def shared_code(folder: Path = SHARED_CODE) -> Path:
    """The folder with the checkpoint's own code; raises with what is missing if it is not whole."""
    missing = [name for name in SNAPSHOT_FILES if not (folder / name).is_file()]
    if missing:
        raise SharedCodeMissing(
            f"{folder} lacks {', '.join(missing)}: the qwen-audio-chat tests build their "
            "checkpoint from the real checkpoint's code in the project's shared/ folder beside "
            "the checkout (CI provides it)"
        )
    return folder


def pinned_python() -> Path:
    """The Python of the environment with transformers < 4.54."""
    override = os.environ.get("AUDIOCHAT_QWEN_AUDIO_CHAT_PYTHON")
    return Path(override) if override else DEFAULT_VENV / "bin" / "python"


def tiny_config(code: Path = SHARED_CODE) -> dict[str, Any]:
    """The shared `config.json` with the shrinkable sizes made small."""
    config: dict[str, Any] = json.loads((shared_code(code) / "config.json").read_text())
    config.update(TINY_TEXT)
    config["audio"] = {**config["audio"], **TINY_AUDIO}
    return config


def copy_snapshot(folder: Path, config: dict[str, Any], code: Path = SHARED_CODE) -> Path:
    """The snapshot's files in `folder`, with `config` as its `config.json`; no weights."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SNAPSHOT_FILES:
        shutil.copy(shared_code(code) / name, folder / name)
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def build_in_memory(code: Path, full_size: bool, device: str) -> tuple[Any, Any]:
    """(model, tokenizer) of the checkpoint in `code`, the model made with random weights on
    `device` (bf16 on a GPU), never written to disk. Run by the pinned environment's Python."""
    import tempfile

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from worker.backends.qwen_audio_chat import precision_flags

    sizes = json.loads((shared_code(code) / "config.json").read_text())
    folder = copy_snapshot(
        Path(tempfile.mkdtemp(prefix="qwen-audio-chat-")),
        sizes if full_size else tiny_config(code),
        code,
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
    for flag, value in precision_flags(device).items():
        setattr(config, flag, value)
    dtype = torch.bfloat16 if device != "cpu" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=True, torch_dtype=dtype)
    # What from_pretrained does and from_config does not: the checkpoint's generation config
    # (chat format, window), and the filterbank beside the module the audio code reads it from.
    model.generation_config = GenerationConfig.from_pretrained(folder)
    module = Path(sys.modules[type(model).__module__].__file__ or "")
    shutil.copy(folder / "mel_filters.npz", module.with_name("mel_filters.npz"))
    return model.eval(), tokenizer


def build(folder: Path, python: Path, env: dict[str, str] | None = None) -> Path:
    """A tiny checkpoint in `folder`: the snapshot's files and random weights beside them."""
    config = tiny_config()
    copy_snapshot(folder, config)
    run_builder(str(python), "testbed.tiny_qwen_audio_chat", folder, env)
    # save_pretrained rewrote the configs from the classes' defaults; the snapshot's own win.
    copy_snapshot(folder, config)
    return folder


def _save(folder: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True, local_files_only=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    # The real embedding has 782 rows past the tokenizer's last id, padding a trained model never
    # picks. Random rows would be picked now and then, and the checkpoint's own `chat()`, which
    # the tests compare answers with, cannot decode them; zero rows never win a greedy choice.
    # (The backend's own handling of such ids has a test of its own.)
    with torch.no_grad():
        model.lm_head.weight[len(tokenizer) :] = 0.0
    model.save_pretrained(folder)


if __name__ == "__main__":
    _save(Path(sys.argv[1]))
