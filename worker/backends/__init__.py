"""Model backends, one module per model family, all behind `base.ModelBackend`."""

from __future__ import annotations

import importlib

from shared.config import Settings
from shared.errors import UnknownModel
from worker.backends.base import ModelBackend

# Model name -> "module:Class"; each class has `load(settings)`. Imported only when chosen, so
# a worker loads the libraries of its own model and no other.
BACKENDS = {
    "embedded": "worker.backends.embedded:EmbeddedBackend",
    "echo": "worker.backends.echo:EchoBackend",
    "qwen2-audio": "worker.backends.qwen2_audio:Qwen2AudioBackend",
    "qwen-audio-chat": "worker.backends.qwen_audio_chat:QwenAudioChatBackend",
}


def load_backend(settings: Settings) -> ModelBackend:
    """Load the backend this worker serves: `AUDIOCHAT_BACKEND_CLASS`, else by model name."""
    target = settings.backend_class or BACKENDS.get(settings.model)
    if target is None:
        raise UnknownModel(f"no backend for model {settings.model!r}")
    module_name, _, class_name = target.partition(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    backend: ModelBackend = backend_class.load(settings)
    return backend
