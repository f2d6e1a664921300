"""The figures docs/benchmarks.md's findings read from the profiles and measurements
(bench/templates/findings.md.j2 says what they mean)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.report_format import function_name, pct, share


def worker_audio_share(queue: dict[str, Any]) -> float:
    """The echo worker's share of samples in fetching and decoding a job's audio."""
    worker = (queue.get("profiles") or {}).get("worker")
    # `StageInputs.audio` since the pipeline's inputs moved out of it; earlier profiles name
    # `JobPipeline._load_audio`.
    names = ("StageInputs.audio", "JobPipeline._load_audio", "decode_audio")
    return max(share(worker, name) for name in names)


def gateway_heavier_than_floor(queue: dict[str, Any]) -> bool:
    """Whether the gateway alone spends more CPU per spoken job, at the first level, than the
    floor's worker, Redis and producer together per chain."""
    spoken, floor = queue["audio"]["levels"], queue["floor"]["levels"]
    if not (spoken and floor):
        return False
    gateway = spoken[0]["cpu_ms_per_job"].get("gateway", 0)
    return bool(gateway > sum(floor[0]["cpu_ms_per_job"].values()))


def heaviest(summary: dict[str, Any], leave_out: Iterable[str], top: int) -> list[str]:
    """The `top` heaviest of audiochat's own functions in a profile, inclusive, as
    `` `name` share`` (those in `leave_out` skipped: the server's and the middleware's frames,
    which hold everything)."""
    skip = set(leave_out)
    return [
        f"`{function_name(e['frame'])}` {pct(e['share'])}"
        for e in summary.get("inclusive_own", [])
        if function_name(e["frame"]) not in skip
    ][:top]


def probe_share(upload: dict[str, Any]) -> float:
    """The largest share of the gateway's samples in `probe_audio` during any upload."""
    return max(
        (
            share(measured.get("profile"), "probe_audio")
            for sizes in upload["stores"].values()
            for measured in sizes.values()
        ),
        default=0.0,
    )


def fanout_shares(summary: dict[str, Any]) -> dict[str, float]:
    """Where the gateway's samples went while it fanned events out: uvicorn's socket writes,
    the event loop, audiochat's own per-client code, and JSON encoding."""
    return {
        "write": share(summary, "RequestResponseCycle.send", "self"),
        "loop": share(summary, "Runner.run", "self"),
        "own": share(summary, "job_events.<locals>.stream")
        + share(summary, "EventHub._dispatch")
        + share(summary, "EventHub.follow"),
        "json": share(summary, "dumps", "self") + share(summary, "JSONEncoder.iterencode", "self"),
    }
