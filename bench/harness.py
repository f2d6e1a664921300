"""What every benchmark needs: real processes on loopback, the machine's description,
process memory and CPU, and audio files made on the spot.

Processes come from `testbed/processes.py`, which the tests use too: redis-server, the moto S3
server, `audiochat serve` and `audiochat worker`, each on a free loopback port.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from testbed.paths import REPO_ROOT
from testbed.processes import (
    S3_ENV,
    Gateway,
    Process,
    RedisServer,
    S3Server,
    Worker,
    wait_for,
)

__all__ = [
    "REPO_ROOT",
    "S3_ENV",
    "Gateway",
    "Process",
    "RedisServer",
    "S3Server",
    "Worker",
    "wait_for",
]

RESULTS_DIR = REPO_ROOT / "bench" / "results"
WORK_DIR = RESULTS_DIR / "tmp"  # git-ignored: logs, generated audio, raw profiles
SHARED_AUDIO = REPO_ROOT.parent / "shared" / "audio"


def log(message: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _command_output(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    """The machine, software and commit a run measured, and how busy the machine was."""
    cpu_model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    commit = _command_output("git", "-C", str(REPO_ROOT), "rev-parse", "HEAD")
    dirty = _command_output(
        "git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "api", "shared", "worker"
    )
    redis_version = _command_output("redis-server", "--version")
    return {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "redis_server": redis_version.split(" v=")[1].split()[0] if " v=" in redis_version else "",
        "commit": commit,
        "code_modified": bool(dirty),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "time": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (its threads included)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size since it started (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def redis_connections_of(pid: int, redis_port: int) -> int:
    """TCP connections a process holds open to the Redis server."""
    conns = psutil.Process(pid).net_connections(kind="tcp")
    return sum(1 for c in conns if c.raddr and c.raddr.port == redis_port)


class RssSampler:
    """Samples a process's RSS in a background thread; `peak` is the largest seen."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")
        self.samples: list[int] = []

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self._process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max(self.samples) if self.samples else 0


@dataclass
class Services:
    """Redis (and optionally the S3 server) for one suite, stopped when it ends."""

    workdir: Path
    redis: RedisServer = field(init=False)
    s3: S3Server | None = None

    def __post_init__(self) -> None:
        self.redis = RedisServer(self.workdir / "redis")


@contextmanager
def services(workdir: Path, s3: bool = False) -> Iterator[Services]:
    """A fresh redis-server (and moto S3 server), stopped on exit."""
    running = Services(workdir)
    running.redis.start()
    try:
        if s3:
            running.s3 = S3Server(workdir)
            running.s3.start()
        yield running
    finally:
        if running.s3 is not None:
            running.s3.stop()
        running.redis.stop()


@contextmanager
def gateway(env: dict[str, str], workdir: Path, name: str = "gateway") -> Iterator[Gateway]:
    """`audiochat serve` with `env`, stopped on exit."""
    process = Gateway(env, workdir, name=name)
    process.start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def worker(env: dict[str, str], workdir: Path, name: str) -> Iterator[Worker]:
    """`audiochat worker` with `env`, ready once its heartbeat is in Redis; stopped on exit."""
    process = Worker(env, workdir, name)
    process.start(timeout=300)
    try:
        yield process
    finally:
        process.stop()


def base_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {"AUDIOCHAT_REDIS_URL": redis_url, "AUDIOCHAT_LOG_LEVEL": "INFO", **extra}


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Write one suite's results to bench/results/<name>.json."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    log(f"wrote {path.relative_to(REPO_ROOT)}")
    return path


# --- audio made on the spot -------------------------------------------------------------

PASSAGE = (
    "The history of the lighthouse begins with fires lit on hilltops to guide ships home. "
    "Later, towers of stone carried lamps of oil, and mirrors gathered their light into a beam. "
    "Keepers trimmed the wicks every night and wound the clockwork that turned the lens. "
    "Today most lights are automatic, yet sailors still read the coast by their flashes. "
    "Each lighthouse has its own rhythm, so a navigator who counts the seconds between flashes "
    "knows exactly which headland lies ahead. Fog signals did the same work by sound, with "
    "horns and bells that could be heard far beyond the reach of the light. "
    "What was the main purpose of the mirrors in the old towers?"
)


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=300)


def espeak_clip(
    out: Path, text: str, seconds: float | None = None, voice: str | None = None, wpm: int = 165
) -> Path:
    """Speech by espeak-ng (in `voice`, at `wpm` words a minute) as 16 kHz mono WAV, cut to
    `seconds` (or padded with the passage spoken again) when given."""
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".raw.wav")
    _run("espeak-ng", *(["-v", voice] if voice else []), "-s", str(wpm), "-w", str(raw), text)
    if seconds is None:
        _run("ffmpeg", "-y", "-v", "error", "-i", str(raw), "-ar", "16000", "-ac", "1", str(out))
    else:
        _run(
            "ffmpeg", "-y", "-v", "error", "-stream_loop", "-1", "-i", str(raw),
            "-t", f"{seconds:.3f}", "-ar", "16000", "-ac", "1", str(out),
        )  # fmt: skip
    raw.unlink()
    return out


def sized_wav(out: Path, size_bytes: int, source: Path) -> Path:
    """A 48 kHz stereo 16-bit WAV of about `size_bytes`: `source` speech looped."""
    if out.exists() and abs(out.stat().st_size - size_bytes) < 1_000_000:
        return out
    seconds = (size_bytes - 44) / (48_000 * 2 * 2)
    _run(
        "ffmpeg", "-y", "-v", "error", "-stream_loop", "-1", "-i", str(source),
        "-t", f"{seconds:.3f}", "-ar", "48000", "-ac", "2", "-c:a", "pcm_s16le", str(out),
    )  # fmt: skip
    return out


def audio_seconds(path: Path) -> float:
    """Duration of an audio file as PyAV decodes it."""
    from shared.media import probe_audio

    return round(probe_audio(path, 1e9).duration_seconds, 3)


def have(binary: str) -> bool:
    return shutil.which(binary) is not None
