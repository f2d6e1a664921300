"""The real qwen-audio-chat backend whose model fails mid-generation, as a GPU out of memory would.

Loaded by a real worker through AUDIOCHAT_BACKEND_CLASS: the checkpoint's code, the backend and
the worker are real; only the model's `generate` makes two tokens and then raises, so the test
sees how the worker handles a failure inside the model.
"""

from __future__ import annotations

from typing import Any

from shared.config import Settings
from worker.backends.qwen_audio_chat import QwenAudioChatBackend

FAILURE = "scripted failure in generate"


class _GenerateFails:
    """The loaded model, except that `generate` makes two tokens and then raises."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self._model.generate(*args, **{**kwargs, "max_new_tokens": 2})
        raise RuntimeError(FAILURE)


class FailingQwenAudioChatBackend(QwenAudioChatBackend):
    @classmethod
    def load(cls, settings: Settings) -> FailingQwenAudioChatBackend:
        real = QwenAudioChatBackend.load(settings)
        return cls(_GenerateFails(real.model), real.tokenizer, real.remote, real.device)
