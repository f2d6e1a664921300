"""`GET /v1/models` through the official OpenAI client: the models live workers serve now."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from shared.workers import WorkerRegistry
from tests.support.stack import Stack


@pytest.fixture
def client(stack: Stack) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{stack.url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_lists_the_models_with_live_workers(stack: Stack, client: OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}
    assert set(models) == {"echo", "embedded"}
    live = WorkerRegistry(stack.redis()).live_workers()
    for name, model in models.items():
        assert model.object == "model" and model.owned_by == "audiochat"
        serving = [w for w in live if w.model == name]
        extra = model.model_extra or {}
        assert extra["workers"] == len(serving) == 1
        assert extra["devices"] == [serving[0].device]
        assert model.created == int(serving[0].started_at.timestamp())


def test_retrieve_one_model(client: OpenAI) -> None:
    assert client.models.retrieve("echo").id == "echo"
    with pytest.raises(openai.NotFoundError) as unknown:
        client.models.retrieve("gpt-4o")
    assert unknown.value.code == "unknown-model"
    with pytest.raises(openai.InternalServerError) as unserved:
        client.models.retrieve("qwen-audio-chat")
    assert unserved.value.status_code == 503 and unserved.value.code == "model-unavailable"
