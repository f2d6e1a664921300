"""The GPU check (bench/gpu_check.py) run end to end on the CPU with the toy models, as CI can:
both models built in memory from their real code, served by the real backends, measured alone
and in batches. On a GPU the same script measures the real sizes (docs/gpu.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import tiny_qwen_audio_chat
from testbed.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_gpu_check_runs_both_models_on_the_cpu(tmp_path: Path) -> None:
    tiny_qwen_audio_chat.shared_code()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_check",
            "--tiny",
            "--device=cpu",
            "--levels=1,4",
            "--tokens=8",
            f"--pinned-python={tiny_qwen_audio_chat.pinned_python()}",
            f"--out={tmp_path}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    models = {m["model"]: m for m in report["models"]}
    assert set(models) == {"qwen2-audio", "qwen-audio-chat"}
    for result in models.values():
        assert "error" not in result, result.get("error")
        assert result["sizes"] == "tiny" and result["concurrency"] == 4
        assert result["alone"]["tokens"] == 8 and result["alone"]["decode_tokens_per_s"] > 0
        assert [level["batch"] for level in result["levels"]] == [1, 4]
        assert [level["jobs"] for level in result["levels"]] == [1, 4]
    # Each ran with its own transformers: the checkpoint's code needs the pinned one.
    assert models["qwen-audio-chat"]["transformers"].startswith("4.")
    assert models["qwen2-audio"]["transformers"].startswith("5.")
