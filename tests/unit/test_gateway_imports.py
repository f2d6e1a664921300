"""The gateway stays light: no torch, no transformers, no worker code; `shared` stays neutral."""

from __future__ import annotations

import json
import subprocess
import sys

from testbed.paths import REPO_ROOT


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_gateway_app_imports_no_model_or_worker_code() -> None:
    modules = _modules_after(
        "from api.main import create_app\nfrom shared.config import Settings\n"
        "create_app(Settings(storage_url='file:///tmp/audiochat-import-test'))"
    )
    assert "fastapi" in modules  # the check itself works
    forbidden = {
        m
        for m in modules
        if m.split(".")[0]
        in {"torch", "transformers", "worker", "webhooks", "faster_whisper", "ctranslate2"}
    }
    assert not forbidden


def test_shared_imports_neither_fastapi_nor_celery() -> None:
    modules = _modules_after(
        "import shared.config, shared.errors, shared.events, shared.jobs, shared.media, "
        "shared.schemas, shared.storage, shared.tasks, shared.workers, shared.deliveries, "
        "shared.webhook_secrets, shared.webhook_urls, shared.celery_settings, shared.redis_keys, "
        "shared.upload_records, shared.job_endings"
    )
    assert "redis" in modules
    assert not {m for m in modules if m.split(".")[0] in {"fastapi", "starlette", "celery", "api"}}


def test_the_webhook_worker_imports_no_model_code() -> None:
    modules = _modules_after("import webhooks.main")
    assert "celery" in modules and "httpx" in modules
    heavy = {"torch", "transformers", "faster_whisper", "ctranslate2", "numpy", "fastapi"}
    assert not {m for m in modules if m.split(".")[0] in heavy}


def test_the_toy_checkpoint_builders_need_none_of_the_service_s_packages() -> None:
    # bench/gpu_check.py imports them on a machine without Redis, httpx or Celery installed.
    modules = _modules_after("import testbed.tiny_qwen2_audio, testbed.tiny_qwen_audio_chat")
    service = {"redis", "httpx", "celery", "fastapi", "shared", "api", "worker"}
    assert not {m for m in modules if m.split(".")[0] in service}
