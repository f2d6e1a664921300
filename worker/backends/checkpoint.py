"""Finding a model's checkpoint: a folder the operator downloaded, never a hub download."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

from shared.config import Settings

logger = logging.getLogger(__name__)


class CheckpointMissing(RuntimeError):
    """`AUDIOCHAT_MODEL_PATH` is unset or does not name a checkpoint folder."""


def checkpoint_folder(settings: Settings) -> Path:
    """The folder `AUDIOCHAT_MODEL_PATH` names, checked to hold a `config.json`."""
    if not settings.model_path:
        raise CheckpointMissing(
            f"model {settings.model!r} loads from a local checkpoint: set AUDIOCHAT_MODEL_PATH "
            "to the folder holding it (see docs/gpu.md)"
        )
    folder = Path(settings.model_path).expanduser()
    if not (folder / "config.json").is_file():
        raise CheckpointMissing(f"{folder} is not a checkpoint folder (it has no config.json)")
    return folder


class LoadedBackend(Protocol):
    name: str
    device: str
    concurrency: int


def log_loaded(backend: LoadedBackend, folder: Path, settings: Settings, started: float) -> None:
    """One line for the operator: what loaded from where, and how many jobs it takes at once.
    `started` is the `time.perf_counter()` reading from before the load."""
    logger.info(
        "%s loaded from %s on %s (%s) in %.1f s; up to %d jobs at once",
        backend.name,
        folder,
        backend.device,
        settings.quantization,
        time.perf_counter() - started,
        backend.concurrency,
    )
