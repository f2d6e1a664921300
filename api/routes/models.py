"""`GET /v1/models`: the models live workers serve now, in OpenAI's list format."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep
from api.openai_errors import OpenAIRoute
from api.openai_schemas import ModelCard, ModelList
from shared.errors import ModelUnavailable, UnknownModel
from shared.tasks import KNOWN_MODELS
from shared.workers import WorkerInfo

router = APIRouter(prefix="/v1/models", tags=["openai"], route_class=OpenAIRoute)


def _cards(workers: list[WorkerInfo]) -> list[ModelCard]:
    by_model: dict[str, list[WorkerInfo]] = defaultdict(list)
    for worker in workers:
        # A worker for a model audiochat does not know could not be sent a job anyway.
        if worker.model in KNOWN_MODELS:
            by_model[worker.model].append(worker)
    return [
        ModelCard(
            id=model,
            created=int(min(w.started_at for w in serving).timestamp()),
            workers=len(serving),
            devices=sorted({w.device for w in serving}),
        )
        for model, serving in sorted(by_model.items())
    ]


@router.get("", response_model=ModelList)
async def list_models(services: ServicesDep) -> ModelList:
    """Models with at least one live worker, with how many workers and on which devices."""
    workers = await run_in_threadpool(services.workers.live_workers)
    return ModelList(data=_cards(workers))


@router.get("/{model_id}", response_model=ModelCard)
async def get_model(model_id: str, services: ServicesDep) -> ModelCard:
    """One model, if a live worker serves it now."""
    if model_id not in KNOWN_MODELS:
        raise UnknownModel(f"unknown model {model_id!r}; known: {', '.join(KNOWN_MODELS)}")
    workers = await run_in_threadpool(services.workers.live_workers, model_id)
    if not workers:
        raise ModelUnavailable(f"no live worker serves model {model_id!r}")
    return _cards(workers)[0]
