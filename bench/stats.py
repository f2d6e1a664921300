"""Percentiles and summaries of latency samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """n, p50, p90, p99, max and mean of samples given in seconds, in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    out: dict[str, Any] = {"n": len(ms)}
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        value = percentile(ms, q)
        out[name] = None if value is None else round(value, 3)
    out["max"] = round(max(ms), 3) if ms else None
    out["mean"] = round(sum(ms) / len(ms), 3) if ms else None
    return out
