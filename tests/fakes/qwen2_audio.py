"""The real qwen2-audio backend whose model fails mid-generation, as a GPU out of memory would.

Loaded by a real worker through AUDIOCHAT_BACKEND_CLASS: everything but the model's `generate`
is the real backend, so the test sees how the worker, not the fake, handles the failure.
"""

from __future__ import annotations

from typing import Any

from shared.config import Settings
from worker.backends.qwen2_audio import Qwen2AudioBackend

FAILURE = "scripted failure in generate"


class _GenerateFails:
    """The loaded model, except that `generate` makes two tokens and then raises."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, **kwargs: Any) -> Any:
        self._model.generate(**{**kwargs, "max_new_tokens": 2})
        raise RuntimeError(FAILURE)


class FailingQwen2AudioBackend(Qwen2AudioBackend):
    @classmethod
    def load(cls, settings: Settings) -> FailingQwen2AudioBackend:
        real = Qwen2AudioBackend.load(settings)
        return cls(_GenerateFails(real.model), real.processor, real.device)
