"""Finding a model's checkpoint: a folder the operator downloaded, never a hub download."""

from __future__ import annotations

from pathlib import Path

from shared.config import Settings


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
