"""The targets table of docs/benchmarks.md: each target of issue 7 whose suite has results,
its limit (bench/results/reference.json), what was measured, met or missed, and how far."""

from __future__ import annotations

from typing import Any

from bench.report_format import DASH, fmt, how_far, verdict
from bench.report_tables import best_jobs_per_s, level, upload_growth


def target_rows(results: dict[str, Any], targets: dict[str, Any]) -> list[list[str]]:
    """One row per target of issue 7 whose suite has results: the limit, what was measured,
    met or missed, and how far."""
    rows: list[list[str]] = []
    if results.get("queue"):
        rows += _queue_targets(results["queue"], targets)
    if results.get("e2e"):
        rows += _e2e_targets(results["e2e"], targets)
    if results.get("fanout"):
        rows += _fanout_targets(results["fanout"], targets)
    if results.get("upload"):
        upload = results["upload"]
        for store in upload["stores"]:
            small, grew_small, large, grew_large = upload_growth(upload, store)
            flat = grew_large - grew_small <= targets["upload_flat_mb"]
            rows.append(
                [
                    f"upload: gateway peak memory vs file size ({store} store)",
                    "does not grow",
                    f"+{fmt(grew_small)} MB at {small} MB, +{fmt(grew_large)} MB at {large} MB",
                    verdict(flat),
                    DASH if flat else f"grows by {grew_large - grew_small:.0f} MB",
                ]
            )
    return rows


def _queue_targets(queue: dict[str, Any], targets: dict[str, Any]) -> list[list[str]]:
    rows = []
    one = level(queue["audio"]["levels"], 1)
    if one:
        for name, limit in (("p50", targets["queue_p50_ms"]), ("p99", targets["queue_p99_ms"])):
            measured = one["done_ms"][name]
            rows.append(
                [
                    f"queue: {name} POST → done, 1 client (spoken)",
                    f"≤ {limit:g} ms",
                    f"{fmt(measured)} ms",
                    verdict(measured <= limit),
                    how_far(measured, limit),
                ]
            )
    floor, spoken = best_jobs_per_s(queue, "floor"), best_jobs_per_s(queue, "audio")
    share = targets["queue_throughput_share_of_floor"]
    wanted = share * floor
    rows.append(
        [
            "queue: jobs/s, one gateway + one worker (spoken)",
            f"≥ {share}\u00d7 floor = {wanted:.0f}/s",
            f"{fmt(spoken)}/s ({spoken / floor:.2f}\u00d7 floor)",
            verdict(spoken >= wanted),
            how_far(spoken, wanted, lower_is_better=False),
        ]
    )
    return rows


def _e2e_targets(e2e: dict[str, Any], targets: dict[str, Any]) -> list[list[str]]:
    summary = e2e["summary"]
    ratio, limit = summary["ratio_p50"], targets["e2e_ratio"]
    return [
        [
            "end to end: service / direct time, p50 over clips",
            f"≤ {limit:.2f}\u00d7",
            f"{ratio:.3f}\u00d7",
            verdict(ratio <= limit),
            how_far(ratio, limit),
        ],
        [
            "end to end: same transcript",
            "every clip",
            f"{summary['same_transcripts']} of {summary['clips']}",
            verdict(summary["same_transcripts"] == summary["clips"]),
            DASH,
        ],
    ]


def _fanout_targets(fanout: dict[str, Any], targets: dict[str, Any]) -> list[list[str]]:
    smallest, largest = fanout["levels"][0], fanout["levels"][-1]
    n = largest["clients"]
    p99, rss = largest["latency_ms"]["p99"], largest["gateway_rss_mb"]["peak"]
    p99_limit, rss_limit = targets["fanout_p99_ms"], targets["fanout_rss_mb"]
    low = smallest["gateway_redis_connections"]["connected"]
    high = largest["gateway_redis_connections"]["connected"]
    return [
        [
            f"fan-out: p99 publish → receipt, {n:,} clients",
            f"< {p99_limit:g} ms",
            f"{fmt(p99)} ms",
            verdict(p99 is not None and p99 < p99_limit),
            how_far(p99, p99_limit),
        ],
        [
            f"fan-out: gateway RSS, {n:,} clients",
            f"< {rss_limit:g} MB",
            f"{fmt(rss)} MB",
            verdict(rss < rss_limit),
            how_far(rss, rss_limit),
        ],
        [
            "fan-out: Redis connections vs clients",
            "do not grow",
            f"{low} at {smallest['clients']:,} clients, {high} at {n:,}",
            verdict(high - low <= targets["fanout_connections_growth"]),
            DASH,
        ],
    ]
