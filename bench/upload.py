"""Suite 4: the upload path. 10 MB and 100 MB WAV uploads (real audio: speech looped to
length, 48 kHz stereo PCM) to a gateway on the local-directory store and on the S3 server.

Each (store, size) pair gets a fresh gateway process, so its peak memory is that pair's alone:
peak RSS during the upload minus RSS before it (sampled every 5 ms), and the process's VmHWM.
Throughput is the file's size over the POST's wall time (the gateway answers 202 only after it
has probed and stored the whole file). The echo worker takes each job before the next upload.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import (
    PASSAGE,
    S3_ENV,
    WORK_DIR,
    RssSampler,
    audio_seconds,
    base_env,
    espeak_clip,
    gateway,
    log,
    machine_info,
    peak_rss_bytes,
    services,
    sized_wav,
    worker,
)
from bench.profiling import Profile

MB = 2**20
SIZES_MB = (10, 100)


def _upload(client: httpx.Client, path: Path) -> tuple[float, str]:
    started = time.perf_counter()
    with path.open("rb") as handle:
        response = client.post(
            "/v1/jobs",
            files={"audio": (path.name, handle, "audio/wav")},
            data={"question": "How long is this recording?"},
        )
    seconds = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"upload of {path.name}: HTTP {response.status_code} {response.text}")
    return seconds, str(response.json()["id"])


def _wait_done(client: httpx.Client, job_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = str(client.get(f"/v1/jobs/{job_id}").json()["status"])
        if status in ("succeeded", "failed", "canceled"):
            return status
        time.sleep(0.1)
    return "timeout"


def _measure(
    url: str, pid: int, path: Path, repeats: int, profile_to: Path | None
) -> dict[str, Any]:
    runs = []
    with httpx.Client(base_url=url, timeout=300) as client:
        for _ in range(repeats):
            before = _rss(pid)
            with RssSampler(pid, interval=0.005) as sampler:
                seconds, job_id = _upload(client, path)
            status = _wait_done(client, job_id)
            runs.append(
                {
                    "seconds": round(seconds, 3),
                    "mb_per_s": round(path.stat().st_size / MB / seconds, 1),
                    "rss_before_mb": round(before / MB, 1),
                    "rss_peak_mb": round(max(sampler.peak, before) / MB, 1),
                    "rss_growth_mb": round((max(sampler.peak, before) - before) / MB, 1),
                    "job_status": status,
                }
            )
        profile = None
        if profile_to is not None:
            with Profile(pid, profile_to) as prof:
                _upload(client, path)
            profile = prof.summary()
    best = min(runs, key=lambda r: r["seconds"])
    return {
        "runs": runs,
        "seconds_best": best["seconds"],
        "mb_per_s_best": best["mb_per_s"],
        "rss_growth_mb_max": max(r["rss_growth_mb"] for r in runs),
        "vmhwm_mb": round(peak_rss_bytes(pid) / MB, 1),
        "profile": profile,
    }


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def run(quick: bool, profile: bool) -> dict[str, Any]:
    repeats = 1 if quick else 3
    workdir = WORK_DIR / "upload"
    audio_dir = WORK_DIR / "audio"
    speech = espeak_clip(audio_dir / "passage.wav", PASSAGE)
    files = {}
    for size in SIZES_MB:
        files[size] = sized_wav(audio_dir / f"upload-{size}mb.wav", size * MB, speech)
    result: dict[str, Any] = {
        "suite": "upload",
        "quick": quick,
        "machine": machine_info(),
        "params": {
            "repeats": repeats,
            "files": {
                str(size): {
                    "bytes": path.stat().st_size,
                    "seconds": audio_seconds(path),
                    "format": "WAV, PCM s16le, 48 kHz stereo",
                }
                for size, path in files.items()
            },
            "max_upload_bytes": 200 * MB,
            "max_audio_seconds": 3600,
        },
        "stores": {},
    }
    with services(workdir, s3=True) as svc:
        assert svc.s3 is not None
        limits = {
            "AUDIOCHAT_MAX_UPLOAD_BYTES": str(200 * MB),
            "AUDIOCHAT_MAX_AUDIO_SECONDS": "3600",
            "AUDIOCHAT_MODEL": "echo",
        }
        stores = {
            "local": {"AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'objects'}"},
            "s3": {
                "AUDIOCHAT_STORAGE_URL": "s3://audiochat-bench",
                "AUDIOCHAT_S3__ENDPOINT_URL": svc.s3.endpoint_url,
                **S3_ENV,
            },
        }
        for store, store_env in stores.items():
            env = base_env(svc.redis.url(), **limits, **store_env)
            result["stores"][store] = {}
            with worker(env, workdir, f"worker-{store}"):
                for size, path in files.items():
                    with gateway(env, workdir, name=f"gateway-{store}-{size}") as gw:
                        # A small upload first: the process's imports and pools warmed up.
                        with httpx.Client(base_url=gw.url, timeout=60) as client:
                            _wait_done(client, _upload(client, speech)[1])
                        log(f"upload: {size} MB to the {store} store, {repeats}x")
                        target = (
                            WORK_DIR / "profiles" / f"upload-{store}-{size}.txt"
                            if profile and size == max(SIZES_MB)
                            else None
                        )
                        measured = _measure(gw.url, gw.process.pid, path, repeats, target)
                        result["stores"][store][str(size)] = measured
                        print(
                            f"  upload store={store} size={size} MB "
                            f"best={measured['seconds_best']} s "
                            f"({measured['mb_per_s_best']} MB/s) "
                            f"rss growth max={measured['rss_growth_mb_max']} MB "
                            f"VmHWM={measured['vmhwm_mb']} MB",
                            flush=True,
                        )
    result["load_average_end"] = list(machine_info()["load_average"])
    return result
