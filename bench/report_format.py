"""How figures are written in docs/benchmarks.md: numbers, shares, tables, verdicts.

The template (bench/templates/) uses these as filters and functions; the row builders
(report_tables.py, report_answers.py, report_batching.py) use them for cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DASH = "\u2013"


def fmt(value: Any, digits: int = 1) -> str:
    """A cell or a figure in prose: thousands separated, floats to `digits` places."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def pct(share: float | None, digits: int = 0) -> str:
    """A share of 1 as a percentage."""
    return DASH if share is None else f"{100 * share:.{digits}f} %"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; cells that are not text go through `fmt`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows
    ]
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    return DASH if met is None else ("**met**" if met else "**missed**")


def how_far(measured: float | None, target: float, lower_is_better: bool = True) -> str:
    """How far a measurement is from its target, as a factor."""
    if measured is None or not target or (not lower_is_better and not measured):
        return DASH
    factor = measured / target if lower_is_better else target / measured
    if factor <= 1:
        return f"within ({factor:.2f}\u00d7 of the limit)"
    if not lower_is_better:
        return f"short by {factor:.2f}\u00d7"
    return f"{factor:.2f}\u00d7 the limit"


def share(summary: dict[str, Any] | None, name: str, kind: str = "inclusive_own") -> float:
    """A profile's share of samples in the first frame whose function is `name` (0 if none)."""
    for entry in (summary or {}).get(kind, []):
        if entry["frame"].split(" (", 1)[0] == name:
            return float(entry["share"])
    return 0.0


def function_name(frame: str) -> str:
    """`name (file.py)` -> `name`."""
    return frame.split(" (", 1)[0]
