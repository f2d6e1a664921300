"""Suite 5: several jobs at once on one model, through the real stack, on the tiny checkpoints.

For each Qwen backend (qwen2-audio in the main environment, qwen-audio-chat in its pinned one),
one worker with `AUDIOCHAT_WORKER_CONCURRENCY=8` serves 1, 2, 4 and 8 clients in turn, each
asking again as soon as it is answered, with two kinds of job:

- `audio`: a question about a 5.9 s clip: transcribe, then answer, both generating, and both
  running the audio encoder over its 30 s window;
- `typed`: a typed question, answered in 64 tokens: decoding alone.

Measured per level: jobs per second, each job's time from submit to `done` (p50, p99), and the
mean batch the engine decoded (the worker's own counters). For comparison, the same 8 clients
on a worker that runs one stage at a time.

On a CPU with toy weights a decoding step costs little more for 8 rows than for 1, as on a GPU
with real weights, for a different reason (Python's work per step, not reading the weights).
What does not batch is the same in both: each prefill runs alone, and the audio encoder's work
grows with the jobs. On 2 shared cores that work, and the prompts prepared in the stages'
threads, compete with the decoding for the CPU; on a GPU host they do not.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

from bench.harness import (
    SHARED_AUDIO,
    WORK_DIR,
    base_env,
    gateway,
    log,
    machine_info,
    services,
)
from bench.stats import summary_ms
from testbed import tiny_qwen2_audio, tiny_qwen_audio_chat
from testbed.processes import Worker, free_port

LEVELS = (1, 2, 4, 8)
CONCURRENCY = 8
CLIP = "1272-128104-0000.flac"
QUESTION = "What is the speaker talking about?"
ANSWER_TOKENS = 32
TYPED_QUESTION = "Name three things that are usually found in a kitchen, and say why."
TYPED_TOKENS = 64
KINDS = ("audio", "typed")


def _submit(client: httpx.Client, kind: str, clip: Path) -> httpx.Response:
    if kind == "typed":
        body = {"question": TYPED_QUESTION, "max_new_tokens": TYPED_TOKENS}
        return client.post("/v1/jobs", json=body)
    with clip.open("rb") as handle:
        return client.post(
            "/v1/jobs",
            data={"question": QUESTION, "max_new_tokens": str(ANSWER_TOKENS)},
            files={"audio": (clip.name, handle)},
        )


def _job(client: httpx.Client, kind: str, clip: Path) -> float:
    """Submit one job and follow it to `done`: its seconds."""
    started = time.perf_counter()
    response = _submit(client, kind, clip)
    response.raise_for_status()
    job_id = response.json()["id"]
    with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events") as source:
        for event in source.iter_sse():
            if event.event == "done":
                if event.json()["status"] != "succeeded":
                    raise RuntimeError(f"job {job_id} ended {event.json()['status']}")
                break
    return time.perf_counter() - started


def _engine_counters(metrics_url: str) -> tuple[float, float]:
    """(decoding steps, rows decoded) so far, from the worker's metrics."""
    text = httpx.get(metrics_url, timeout=10).text
    found = {
        name: float(value)
        for name, value in re.findall(
            r"^audiochat_worker_batch_(steps|rows)_total\{[^}]*\} (\S+)", text, re.M
        )
    }
    return found.get("steps", 0.0), found.get("rows", 0.0)


def _level(
    url: str, metrics_url: str, kind: str, clip: Path, clients: int, jobs_each: int
) -> dict[str, Any]:
    """`clients` clients, each asking `jobs_each` questions back to back."""
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=300) as client:
            for _ in range(jobs_each):
                try:
                    seconds = _job(client, kind, clip)
                except Exception as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    times.append(seconds)

    steps_before, rows_before = _engine_counters(metrics_url)
    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    steps_after, rows_after = _engine_counters(metrics_url)
    steps = steps_after - steps_before
    return {
        "kind": kind,
        "clients": clients,
        "jobs": len(times),
        "errors": errors,
        "wall_s": round(wall, 3),
        "jobs_per_s": round(len(times) / wall, 3),
        "job_ms": summary_ms(times),
        "steps": int(steps),
        "mean_batch": round((rows_after - rows_before) / steps, 2) if steps else None,
    }


def _backend_run(
    name: str,
    checkpoint: Path,
    python: Path | None,
    workdir: Path,
    clip: Path,
    jobs_each: int,
) -> dict[str, Any]:
    """All levels on one worker of `name`, then 8 clients on a worker of concurrency 1."""
    out: dict[str, Any] = {"levels": [], "one_at_a_time": []}
    with services(workdir / name) as running:
        env = base_env(
            running.redis.url(),
            AUDIOCHAT_MODEL=name,
            AUDIOCHAT_STORAGE_URL=f"file://{workdir / name / 'objects'}",
            HF_HUB_OFFLINE="1",
            HF_MODULES_CACHE=str(workdir / name / "hf-modules"),
        )
        with gateway(env, workdir / name) as api:
            for concurrency in (CONCURRENCY, 1):
                port = free_port()
                worker_env = {
                    **env,
                    "AUDIOCHAT_MODEL_PATH": str(checkpoint),
                    "AUDIOCHAT_WORKER_CONCURRENCY": str(concurrency),
                    "AUDIOCHAT_WORKER_METRICS_PORT": str(port),
                }
                process = Worker(worker_env, workdir / name, f"worker-{concurrency}")
                if python is not None:
                    process.process.args[0] = str(python)
                process.start(timeout=300)
                metrics_url = f"http://127.0.0.1:{port}/metrics"
                try:
                    for kind in KINDS:
                        _level(api.url, metrics_url, kind, clip, 2, 1)  # warm up
                        if concurrency == 1:
                            log(f"{name}, {kind}: 8 clients, one stage at a time")
                            level = _level(api.url, metrics_url, kind, clip, 8, jobs_each)
                            out["one_at_a_time"].append(level)
                            continue
                        for clients in LEVELS:
                            log(f"{name}, {kind}: {clients} clients")
                            level = _level(api.url, metrics_url, kind, clip, clients, jobs_each)
                            out["levels"].append(level)
                finally:
                    process.stop()
    return out


def run(quick: bool, profile: bool) -> dict[str, Any]:
    """Both Qwen backends at each level; `profile` is not used here."""
    jobs_each = 2 if quick else 6
    workdir = WORK_DIR / "batching"
    clip = SHARED_AUDIO / CLIP
    result: dict[str, Any] = {
        "suite": "batching",
        "quick": quick,
        "machine": machine_info(),
        "params": {
            "levels": list(LEVELS),
            "worker_concurrency": CONCURRENCY,
            "jobs_per_client": jobs_each,
            "clip": CLIP,
            "answer_tokens": ANSWER_TOKENS,
            "typed_tokens": TYPED_TOKENS,
        },
        "backends": {},
    }
    log("building the tiny checkpoints")
    qwen2 = tiny_qwen2_audio.build(workdir / "checkpoints" / "qwen2-audio")
    pinned = tiny_qwen_audio_chat.pinned_python()
    chat = tiny_qwen_audio_chat.build(
        workdir / "checkpoints" / "qwen-audio-chat",
        pinned,
        {"HF_MODULES_CACHE": str(workdir / "qwen-audio-chat" / "hf-modules")},
    )
    runs = {"qwen2-audio": (qwen2, None), "qwen-audio-chat": (chat, pinned)}
    for name, (checkpoint, python) in runs.items():
        result["backends"][name] = _backend_run(name, checkpoint, python, workdir, clip, jobs_each)
    result["machine"]["load_average_end"] = machine_info()["load_average"]
    return result
