"""The real qwen-audio-chat backend whose model fails mid-generation, as a GPU out of memory would.

Loaded by a real worker through AUDIOCHAT_BACKEND_CLASS: the checkpoint's code, the backend and
the worker are real; only a decoding step raises, so the test sees how the worker handles a
failure inside the model.
"""

from __future__ import annotations

from shared.config import Settings
from tests.fakes.failing_runner import FAILURE, failing_engine
from worker.backends.qwen_audio_chat import QwenAudioChatBackend

__all__ = ["FAILURE", "FailingQwenAudioChatBackend"]


class FailingQwenAudioChatBackend(QwenAudioChatBackend):
    @classmethod
    def load(cls, settings: Settings) -> FailingQwenAudioChatBackend:
        real = QwenAudioChatBackend.load(settings)
        engine = failing_engine(real.engine)
        return cls(real.model, real.tokenizer, real.remote, real.device, engine)
