"""The real qwen2-audio backend whose model fails mid-generation, as a GPU out of memory would.

Loaded by a real worker through AUDIOCHAT_BACKEND_CLASS: everything but one decoding step is
the real backend, so the test sees how the worker, not the fake, handles the failure.
"""

from __future__ import annotations

from shared.config import Settings
from tests.fakes.failing_runner import FAILURE, failing_engine
from worker.backends.qwen2_audio import Qwen2AudioBackend

__all__ = ["FAILURE", "FailingQwen2AudioBackend"]


class FailingQwen2AudioBackend(Qwen2AudioBackend):
    @classmethod
    def load(cls, settings: Settings) -> FailingQwen2AudioBackend:
        real = Qwen2AudioBackend.load(settings)
        return cls(real.model, real.processor, real.device, failing_engine(real.engine))
