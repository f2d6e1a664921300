"""Celery task and queue names: the only thing the gateway knows about the workers."""

from __future__ import annotations

TRANSCRIBE_TASK = "audiochat.transcribe"
ANSWER_TASK = "audiochat.answer"

# Models audiochat knows how to serve. `echo` answers instantly and is for benchmarks.
KNOWN_MODELS = ("embedded", "qwen2-audio", "qwen-audio-chat", "echo")


def queue_for_model(model: str) -> str:
    """The queue a model's workers consume; jobs are routed by model."""
    return f"model.{model}"


# Webhook deliveries: one attempt per task, on a queue of their own, never a model worker's.
DELIVER_WEBHOOK_TASK = "audiochat.deliver_webhook"
WEBHOOKS_QUEUE = "webhooks"
