"""Suite 3: SSE fan-out. 100, 1 000 and 5 000 clients follow one live job on one gateway
process; every event the worker publishes goes to all of them at once (the worst case: the
whole burst lands on one process in the same instant).

Clients connect in batches and each waits for its first (replayed) event; then the worker's
`TickBackend` publishes timestamped pieces. Measured: publish-to-receipt latency per client
and piece, gateway RSS (before, connected, peak), and the gateway's TCP connections to Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from bench import rawhttp
from bench.backends import GO_DIR_ENV
from bench.harness import (
    WORK_DIR,
    RssSampler,
    base_env,
    gateway,
    log,
    machine_info,
    redis_connections_of,
    services,
    worker,
)
from bench.profiling import Profile
from bench.stats import summary_ms

FULL_LEVELS = (100, 1000, 5000)
QUICK_LEVELS = (100, 500, 1000)
BATCH = 250


class Follower:
    """One SSE client of the job; records the latency of every timestamped piece."""

    def __init__(self, port: int, job_id: str) -> None:
        self.stream = rawhttp.SseClient("127.0.0.1", port, f"/v1/jobs/{job_id}/events")
        self.latencies: list[float] = []
        self.done = False
        self.error: str | None = None
        self.connected = asyncio.Event()

    async def run(self) -> None:
        try:
            await self.stream.connect()
            async for event in self.stream.events():
                self.connected.set()
                if event.event == "answer.delta":
                    text = json.loads(event.data)["text"]
                    for stamp in filter(None, text.split(";")):
                        self.latencies.append(event.wall - float(stamp))
                elif event.event == "done":
                    self.done = True
                    return
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
            self.error = repr(exc)
        finally:
            self.connected.set()
            self.stream.close()


async def _level(
    gw_port: int,
    gw_pid: int,
    redis_port: int,
    go_dir: Any,
    n: int,
    ticks: int,
    interval_ms: int,
    profile_to: Any = None,
) -> dict[str, Any]:
    go_name = uuid.uuid4().hex
    question = f"ticks:{ticks}:{interval_ms}:{go_name}"
    response = await rawhttp.request(
        "127.0.0.1",
        gw_port,
        "POST",
        "/v1/jobs",
        json.dumps({"question": question}).encode(),
        {"Content-Type": "application/json"},
    )
    if response.status != 202:
        raise RuntimeError(f"POST /v1/jobs: HTTP {response.status} {response.body[:300]!r}")
    job_id = response.json()["id"]
    rss_idle = _rss(gw_pid)
    redis_idle = redis_connections_of(gw_pid, redis_port)

    followers = [Follower(gw_port, job_id) for _ in range(n)]
    tasks: list[asyncio.Task[None]] = []
    connect_started = time.perf_counter()
    for start in range(0, n, BATCH):
        batch = followers[start : start + BATCH]
        tasks += [asyncio.create_task(f.run()) for f in batch]
        await asyncio.wait_for(asyncio.gather(*(f.connected.wait() for f in batch)), 120)
    connect_seconds = time.perf_counter() - connect_started
    connected = sum(1 for f in followers if f.error is None)
    rss_connected = _rss(gw_pid)
    redis_connected = redis_connections_of(gw_pid, redis_port)

    profiler = Profile(gw_pid, profile_to) if profile_to is not None else None
    with RssSampler(gw_pid, interval=0.05) as sampler, profiler or _nothing():
        (go_dir / go_name).touch()
        ticks_started = time.perf_counter()
        _, pending = await asyncio.wait(tasks, timeout=ticks * interval_ms / 1000 + 60)
        ticks_seconds = time.perf_counter() - ticks_started
    for task in pending:
        task.cancel()
    redis_after = redis_connections_of(gw_pid, redis_port)
    latencies = [x for f in followers for x in f.latencies]
    errors = sorted({f.error for f in followers if f.error})
    return {
        "profile": profiler.summary() if profiler is not None else None,
        "clients": n,
        "connected": connected,
        "completed": sum(1 for f in followers if f.done),
        "errors": len([f for f in followers if f.error]),
        "error_kinds": errors[:5],
        "ticks": ticks,
        "interval_ms": interval_ms,
        "deliveries": len(latencies),
        "expected_deliveries": n * ticks,
        "connect_s": round(connect_seconds, 3),
        "ticks_wall_s": round(ticks_seconds, 3),
        "latency_ms": summary_ms(latencies),
        "gateway_rss_mb": {
            "idle": _mb(rss_idle),
            "connected": _mb(rss_connected),
            "peak": _mb(max(sampler.peak, rss_connected)),
        },
        "gateway_redis_connections": {
            "idle": redis_idle,
            "connected": redis_connected,
            "after": redis_after,
        },
    }


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def _mb(value: int) -> float:
    return round(value / 2**20, 1)


def _run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def run(quick: bool, profile: bool) -> dict[str, Any]:
    """Each level on a fresh gateway process, so its memory is that level's alone."""
    levels = QUICK_LEVELS if quick else FULL_LEVELS
    ticks, interval_ms = (4, 500) if quick else (8, 1000)
    workdir = WORK_DIR / "fanout"
    go_dir = workdir / "go"
    go_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "suite": "fanout",
        "quick": quick,
        "machine": machine_info(),
        "params": {"levels": list(levels), "ticks": ticks, "interval_ms": interval_ms},
        "levels": [],
        "profiles": {},
    }
    with services(workdir) as svc:
        env = base_env(
            svc.redis.url(),
            AUDIOCHAT_MODEL="echo",
            AUDIOCHAT_STORAGE_URL=f"file://{workdir / 'objects'}",
        )
        result["params"]["redis_max_connections"] = 32
        worker_env = {
            **env,
            "AUDIOCHAT_BACKEND_CLASS": "bench.backends:TickBackend",
            GO_DIR_ENV: str(go_dir),
        }

        def one_level(n: int, name: str, profile_to: Path | None) -> dict[str, Any]:
            """`n` clients on a fresh gateway process, so its memory is that level's alone."""
            with gateway(env, workdir, name=name) as gw:
                return _run_async(
                    _level(
                        gw.port,
                        gw.process.pid,
                        svc.redis.port,
                        go_dir,
                        n,
                        ticks,
                        interval_ms,
                        profile_to,
                    )
                )

        with worker(worker_env, workdir, "worker-tick"):
            for n in levels:
                log(f"fanout: {n} clients, {ticks} events {interval_ms} ms apart")
                level = one_level(n, f"gateway-{n}", None)
                del level["profile"]
                result["levels"].append(level)
                lat = level["latency_ms"]
                print(
                    f"  fanout clients={n} connected={level['connected']} "
                    f"completed={level['completed']} deliveries={level['deliveries']}/"
                    f"{level['expected_deliveries']} p50/p99={lat['p50']}/{lat['p99']} ms "
                    f"rss={level['gateway_rss_mb']} redis={level['gateway_redis_connections']}"
                    f" connect={level['connect_s']} s",
                    flush=True,
                )
            if profile:
                # The largest level once more, profiled while the events go out (not while
                # connecting). Sampling takes CPU from the gateway on a small machine, so this
                # run's latencies are not reported; the measured runs above had no profiler.
                n = levels[-1]
                log(f"fanout: {n} clients again, profiled")
                out = WORK_DIR / "profiles" / "fanout-gateway.txt"
                profiled = one_level(n, f"gateway-{n}-profiled", out)
                result["profiles"]["gateway"] = profiled["profile"]
    result["load_average_end"] = list(machine_info()["load_average"])
    return result


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
