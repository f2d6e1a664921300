"""The rows of docs/benchmarks.md's tables for suites 1-4, the targets, and the figures the
prose of those sections computes from the results (no figure of its own)."""

from __future__ import annotations

from typing import Any

from bench.report_format import fmt
from bench.stats import percentile

QUEUE_KINDS = {
    "floor": "bare Celery chain",
    "audio": "spoken question (2 stages)",
    "text": "typed question (1 stage)",
}


def level(levels: list[dict[str, Any]], clients: int) -> dict[str, Any] | None:
    """The level with this many clients."""
    return next((lv for lv in levels if lv["clients"] == clients), None)


def best_jobs_per_s(queue: dict[str, Any], kind: str) -> float:
    return float(max(lv["jobs_per_s"] for lv in queue[kind]["levels"]))


def queue_rows(queue: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            name,
            lv["clients"],
            lv["jobs"],
            lv["errors"],
            lv["jobs_per_s"],
            lv["first_event_ms"]["p50"],
            lv["first_event_ms"]["p99"],
            lv["done_ms"]["p50"],
            lv["done_ms"]["p99"],
        ]
        for kind, name in QUEUE_KINDS.items()
        for lv in queue[kind]["levels"]
    ]


def cpu_ms_per_second(machine: dict[str, Any]) -> int:
    """CPU milliseconds the machine supplies per second: one thousand per core."""
    return 1000 * int(machine["cpu_count"])


def queue_cpu_rows(queue: dict[str, Any]) -> list[list[Any]]:
    supply = cpu_ms_per_second(queue["machine"])
    rows = []
    for kind, name in QUEUE_KINDS.items():
        for lv in queue[kind]["levels"]:
            cpu = lv.get("cpu_ms_per_job", {})
            total = sum(cpu.values())
            rows.append(
                [
                    name,
                    lv["clients"],
                    cpu.get("gateway"),
                    cpu.get("worker"),
                    cpu.get("redis"),
                    cpu.get("client"),
                    round(total, 2),
                    round(supply / total, 0) if total else None,
                ]
            )
    return rows


def service_rest(service: dict[str, Any]) -> float:
    """Service time not spent in the worker's two stages: what the queue and the HTTP add."""
    stages = (service["worker_transcribe_seconds"] or 0) + (service["worker_answer_seconds"] or 0)
    return float(service["seconds"] - stages)


def e2e_rows(e2e: dict[str, Any]) -> list[list[Any]]:
    """Per clip: both ways' times, their ratio, and whether they heard and said the same."""
    return [
        [
            f"`{c['clip']}`",
            c["source"],
            c["audio_seconds"],
            f"{c['direct']['seconds']:.2f}",
            f"{c['service']['seconds']:.2f}",
            f"{c['ratio']:.3f}",
            c["same_transcript"],
            c["same_answer"],
            fmt(c.get("wer_direct"), 3),
            fmt(c.get("wer_service"), 3),
        ]
        for c in e2e["clips"]
    ]


def e2e_part_rows(e2e: dict[str, Any]) -> list[list[Any]]:
    """Per clip: where each way's time went."""
    return [_e2e_parts(c["clip"], c["direct"], c["service"]) for c in e2e["clips"]]


def _e2e_parts(clip: str, direct: dict[str, Any], service: dict[str, Any]) -> list[Any]:
    return [
        f"`{clip}`",
        f"{direct['transcribe_seconds']:.2f}",
        f"{direct['answer_seconds']:.2f}",
        f"{service['accepted_seconds']:.3f}",
        f"{service['worker_transcribe_seconds'] or 0:.2f}",
        f"{service['worker_answer_seconds'] or 0:.2f}",
        f"{service_rest(service):.3f}",
    ]


def e2e_rest_p50(e2e: dict[str, Any]) -> float:
    """The p50 over clips of what audiochat adds to a job's time."""
    return percentile([service_rest(c["service"]) for c in e2e["clips"]], 50) or 0.0


def fanout_rows(fanout: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for lv in fanout["levels"]:
        rss, conns, latency = (
            lv["gateway_rss_mb"],
            lv["gateway_redis_connections"],
            lv["latency_ms"],
        )
        rows.append(
            [
                lv["clients"],
                lv["connected"],
                f"{lv['deliveries']:,}/{lv['expected_deliveries']:,}",
                latency["p50"],
                latency["p99"],
                latency["max"],
                rss["idle"],
                rss["connected"],
                rss["peak"],
                conns["idle"],
                conns["connected"],
                conns["after"],
                lv["connect_s"],
            ]
        )
    return rows


def upload_sizes(store: dict[str, Any]) -> list[str]:
    """A store's file sizes (MB, as the results file's keys), smallest first."""
    return sorted(store, key=int)


def upload_rows(upload: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            store,
            f"{int(size)} MB",
            f"{m['seconds_best']:.3f}",
            m["mb_per_s_best"],
            m["rss_growth_mb_max"],
            m["vmhwm_mb"],
            ", ".join(r["job_status"] for r in m["runs"]),
        ]
        for store, sizes in upload["stores"].items()
        for size in upload_sizes(sizes)
        for m in [sizes[size]]
    ]


def upload_growth(upload: dict[str, Any], store: str) -> tuple[str, float, str, float]:
    """(smallest size, its RSS growth, largest size, its RSS growth) for one store."""
    sizes = upload["stores"][store]
    keys = upload_sizes(sizes)
    small, large = keys[0], keys[-1]
    return small, sizes[small]["rss_growth_mb_max"], large, sizes[large]["rss_growth_mb_max"]


def run_rows(present: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Per suite: quick or full, when it started, the load at its start and end, how long it
    took, and the commit it measured."""
    rows = []
    for name, r in present.items():
        machine = r["machine"]
        # Suites record the load at their end beside the machine, or (batching) in it.
        end = r.get("load_average_end") or machine.get("load_average_end", [])
        commit = machine["commit"][:12]
        if machine.get("code_modified"):
            commit += " (+ uncommitted changes)"
        rows.append(
            [
                name,
                "quick" if r["quick"] else "full",
                machine["time"],
                " / ".join(fmt(x, 2) for x in machine["load_average"]),
                " / ".join(fmt(x, 2) for x in end),
                fmt(r.get("duration_s")),
                commit,
            ]
        )
    return rows


def profile_rows(frames: list[dict[str, Any]], top: int) -> list[list[str]]:
    """The first `top` frames of a profile summary: the frame, its share of the samples."""
    return [[f"`{f['frame']}`", f"{100 * f['share']:.1f} %"] for f in frames[:top]]
