"""Suite 1: what the queue costs. `echo` jobs through the gateway, one worker and SSE, against
the floor: a bare Celery chain of two tasks that each append one event and publish it.

Each client loops: POST /v1/jobs, open the job's SSE stream, read to `done`; latency is from
the POST to the first event and to `done`. Floor chains are timed from `apply_async` to the
receipt of their second event on the events channel. Levels of 1, 8 and 32 concurrent clients
are interleaved (floor, spoken, typed at each level) so drift on a shared machine hits all three.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import redis.exceptions
from celery import Celery, chain

from api.redis_clients import REDIS_TIMEOUT_SECONDS
from bench import rawhttp
from bench.floor_worker import FIRST_TASK, FLOOR_MODEL, SECOND_TASK
from bench.harness import (
    WORK_DIR,
    Process,
    base_env,
    cpu_seconds,
    espeak_clip,
    gateway,
    log,
    machine_info,
    services,
    worker,
)
from bench.profiling import Profile
from bench.stats import summary_ms
from shared.celery_settings import producer_settings
from shared.config import Settings
from shared.redis_keys import EVENTS_CHANNEL
from shared.tasks import queue_for_model

LEVELS = (1, 8, 32)
FULL_JOBS = {1: 300, 8: 600, 32: 960}
QUICK_JOBS = {1: 40, 8: 80, 32: 160}
QUESTION = "What is the capital of France?"


class FloorChains:
    """Sends two-task chains to the floor worker and times them by their published events."""

    def __init__(self, redis_url: str) -> None:
        self._celery = Celery("bench-floor-producer", set_as_current=False)
        # The producer settings the gateway's JobQueue uses.
        settings = Settings(redis_url=redis_url)
        self._celery.conf.update(producer_settings(settings, REDIS_TIMEOUT_SECONDS))
        self._queue = queue_for_model(FLOOR_MODEL)
        self._waiters: dict[str, tuple[threading.Event, list[float]]] = {}
        self._lock = threading.Lock()
        self._pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(EVENTS_CHANNEL)
        self._thread = threading.Thread(target=self._listen, daemon=True, name="floor-events")
        self._thread.start()

    def _listen(self) -> None:
        try:
            self._relay()
        except (redis.exceptions.RedisError, ValueError, OSError):
            return  # closed by `close()`

    def _relay(self) -> None:
        for message in self._pubsub.listen():
            now = time.perf_counter()
            event = json.loads(message["data"])
            with self._lock:
                waiter = self._waiters.get(event["job_id"])
            if waiter is not None:
                waiter[1].append(now)
                if event["id"] >= 2:
                    waiter[0].set()

    def run_one(self, timeout: float = 10.0) -> tuple[float, float] | None:
        """(seconds to the first event, to the second), or None if it timed out."""
        chain_id = uuid.uuid4().hex
        done, times = threading.Event(), []
        with self._lock:
            self._waiters[chain_id] = (done, times)
        started = time.perf_counter()
        chain(
            self._celery.signature(FIRST_TASK, args=(chain_id,), queue=self._queue, immutable=True),
            self._celery.signature(
                SECOND_TASK, args=(chain_id,), queue=self._queue, immutable=True
            ),
        ).apply_async(retry=False)
        finished = done.wait(timeout)
        with self._lock:
            del self._waiters[chain_id]
        if not finished:
            return None
        return times[0] - started, times[1] - started

    def close(self) -> None:
        self._pubsub.close()
        self._celery.close()


def _floor_level(floor: FloorChains, clients: int, jobs: int, max_seconds: float) -> dict[str, Any]:
    first: list[float] = []
    done: list[float] = []
    errors = 0
    lock = threading.Lock()
    issued = 0
    deadline = time.monotonic() + max_seconds

    def loop() -> None:
        nonlocal issued, errors
        while True:
            with lock:
                if issued >= jobs or time.monotonic() > deadline:
                    return
                issued += 1
            result = floor.run_one()
            with lock:
                if result is None:
                    errors += 1
                else:
                    first.append(result[0])
                    done.append(result[1])

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return _level_record(clients, first, done, errors, wall)


def _level_record(
    clients: int, first: list[float], done: list[float], errors: int, wall: float
) -> dict[str, Any]:
    return {
        "clients": clients,
        "jobs": len(done),
        "errors": errors,
        "wall_s": round(wall, 3),
        "jobs_per_s": round(len(done) / wall, 2) if wall > 0 else None,
        "first_event_ms": summary_ms(first),
        "done_ms": summary_ms(done),
    }


class JobRequest:
    """The body of one POST /v1/jobs: a spoken question (audio) or a typed one (JSON)."""

    def __init__(self, kind: str, clip: Path) -> None:
        if kind == "audio":
            self.body, self.content_type = rawhttp.multipart(
                {}, {"audio": (clip.name, clip.read_bytes())}
            )
        else:
            self.body = json.dumps({"question": QUESTION}).encode()
            self.content_type = "application/json"


async def _one_job(port: int, job: JobRequest) -> tuple[float, float] | None:
    started = time.perf_counter()
    response = await rawhttp.request(
        "127.0.0.1", port, "POST", "/v1/jobs", job.body, {"Content-Type": job.content_type}
    )
    if response.status != 202:
        log(f"POST /v1/jobs: HTTP {response.status} {response.body[:200]!r}")
        return None
    job_id = response.json()["id"]
    stream = rawhttp.SseClient("127.0.0.1", port, f"/v1/jobs/{job_id}/events")
    first: float | None = None
    try:
        await stream.connect()
        async for event in stream.events():
            if first is None:
                first = event.received - started
            if event.event == "done":
                return first, event.received - started
    finally:
        stream.close()
    return None


async def _service_level(
    port: int, job: JobRequest, clients: int, jobs: int, max_seconds: float
) -> dict[str, Any]:
    first: list[float] = []
    done: list[float] = []
    errors = 0
    issued = 0
    deadline = time.monotonic() + max_seconds

    async def loop() -> None:
        nonlocal issued, errors
        while issued < jobs and time.monotonic() < deadline:
            issued += 1
            try:
                result = await asyncio.wait_for(_one_job(port, job), timeout=30)
            except (OSError, TimeoutError, RuntimeError) as exc:
                log(f"job failed: {exc!r}")
                result = None
            if result is None:
                errors += 1
            else:
                first.append(result[0])
                done.append(result[1])

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    wall = time.perf_counter() - started
    return _level_record(clients, first, done, errors, wall)


def _run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def _cpu_per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, float]:
    return {name: round((after[name] - before[name]) * 1000 / max(jobs, 1), 3) for name in before}


def run(quick: bool, profile: bool) -> dict[str, Any]:
    """Measure the floor and `echo` jobs at each level; profile the 32-client level."""
    jobs_at = QUICK_JOBS if quick else FULL_JOBS
    max_seconds = 15.0 if quick else 40.0
    workdir = WORK_DIR / "queue"
    clip = espeak_clip(WORK_DIR / "audio" / "question.wav", QUESTION)
    result: dict[str, Any] = {
        "suite": "queue",
        "quick": quick,
        "machine": machine_info(),
        "params": {
            "levels": list(LEVELS),
            "jobs_per_level": {str(k): v for k, v in jobs_at.items()},
            "max_seconds_per_level": max_seconds,
            "clip_bytes": clip.stat().st_size,
            "question": QUESTION,
        },
        "floor": {"levels": []},
        "audio": {"levels": []},
        "text": {"levels": []},
        "profiles": {},
    }
    with (
        services(workdir / "floor-redis") as floor_services,
        services(workdir / "service-redis") as service_services,
    ):
        floor_env = base_env(floor_services.redis.url())
        floor_worker = Process(
            "floor-worker",
            [sys.executable, "-m", "bench.floor_worker"],
            workdir / "floor-worker.log",
            floor_env,
        )
        floor_worker.start()
        floor = FloorChains(floor_services.redis.url())
        env = base_env(
            service_services.redis.url(),
            AUDIOCHAT_MODEL="echo",
            AUDIOCHAT_STORAGE_URL=f"file://{workdir / 'objects'}",
        )
        try:
            with gateway(env, workdir) as gw, worker(env, workdir, "worker-echo") as wk:
                _wait_for_floor(floor)
                requests = {kind: JobRequest(kind, clip) for kind in ("audio", "text")}
                _run_async(_service_level(gw.port, requests["audio"], 4, 40, 20))  # warm-up
                result["live_workers_check"] = {
                    "before": _live_workers_cost(service_services.redis.url())
                }
                floor_pids = {
                    "worker": floor_worker.pid,
                    "redis": floor_services.redis.process.pid,
                    "client": _self_pid(),
                }
                service_pids = {
                    "gateway": gw.process.pid,
                    "worker": wk.process.pid,
                    "redis": service_services.redis.process.pid,
                    "client": _self_pid(),
                }
                for clients in LEVELS:
                    jobs = jobs_at[clients]
                    log(f"queue: floor, {clients} clients, {jobs} chains")
                    before = _cpu(floor_pids)
                    level = _floor_level(floor, clients, jobs, max_seconds)
                    level["cpu_ms_per_job"] = _cpu_per_job(before, _cpu(floor_pids), level["jobs"])
                    result["floor"]["levels"].append(level)
                    _print_level("floor", level)
                    for kind, job in requests.items():
                        log(f"queue: {kind} jobs, {clients} clients, {jobs} jobs")
                        before = _cpu(service_pids)
                        level = _run_async(_service_level(gw.port, job, clients, jobs, max_seconds))
                        level["cpu_ms_per_job"] = _cpu_per_job(
                            before, _cpu(service_pids), level["jobs"]
                        )
                        result[kind]["levels"].append(level)
                        _print_level(kind, level)
                result["live_workers_check"]["after"] = _live_workers_cost(
                    service_services.redis.url()
                )
                if profile:
                    result["profiles"] = _profile(floor, floor_worker, gw, wk, requests, quick)
        finally:
            floor.close()
            floor_worker.stop()
    result["load_average_end"] = list(machine_info()["load_average"])
    return result


def _live_workers_cost(redis_url: str, calls: int = 20) -> dict[str, Any]:
    """What the gateway's per-POST check for a live worker costs with the keyspace as it is
    (it must stay flat as jobs leave keys behind: `WorkerRegistry.live_workers` reads one
    sorted set)."""
    from shared.workers import WorkerRegistry

    client = redis.Redis.from_url(redis_url)
    registry = WorkerRegistry(client)
    started = time.perf_counter()
    for _ in range(calls):
        registry.live_workers("echo")
    seconds = (time.perf_counter() - started) / calls
    keys = int(client.dbsize())
    client.close()
    return {"keys": keys, "ms": round(seconds * 1000, 3)}


def _self_pid() -> int:
    import os

    return os.getpid()


def _wait_for_floor(floor: FloorChains, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if floor.run_one(timeout=2) is not None:
            for _ in range(50):  # warm-up
                floor.run_one()
            return
    raise RuntimeError("the floor worker did not answer")


def _profile(
    floor: FloorChains,
    floor_worker: Process,
    gw: Any,
    wk: Any,
    requests: dict[str, JobRequest],
    quick: bool,
) -> dict[str, Any]:
    """py-spy on the gateway and the worker while 32 clients send spoken questions, and on
    the floor worker while 32 threads send chains."""
    seconds = 5.0 if quick else 10.0
    out = WORK_DIR / "profiles"
    log(f"queue: profiling the gateway and the worker for {seconds:g} s")
    with (
        Profile(gw.process.pid, out / "queue-gateway.txt") as p_gw,
        Profile(wk.process.pid, out / "queue-worker.txt") as p_wk,
    ):
        _run_async(_service_level(gw.port, requests["audio"], 32, 100_000, seconds))
    log(f"queue: profiling the floor worker for {seconds:g} s")
    with Profile(floor_worker.pid, out / "queue-floor-worker.txt") as p_floor:
        _floor_level(floor, 32, 100_000, seconds)
    return {
        "gateway": p_gw.summary(),
        "worker": p_wk.summary(),
        "floor_worker": p_floor.summary(),
    }


def _print_level(kind: str, level: dict[str, Any]) -> None:
    done, first = level["done_ms"], level["first_event_ms"]
    print(
        f"  {kind:6} clients={level['clients']:3} jobs={level['jobs']:5} "
        f"errors={level['errors']} jobs/s={level['jobs_per_s']} "
        f"first p50/p99={first['p50']}/{first['p99']} ms "
        f"done p50/p99={done['p50']}/{done['p99']} ms cpu/job={level.get('cpu_ms_per_job')}",
        flush=True,
    )
