"""The rows of docs/benchmarks.md's section on several jobs at once on one model (suite 5,
batching.json), and the target its prose judges (bench/templates/batching.md.j2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.report_format import DASH, verdict
from bench.report_tables import level

KIND_NAMES = {"audio": "question about a recording", "typed": "typed question"}


def kinds(batching: dict[str, Any]) -> list[str]:
    """The kinds of job measured, in the order the suite ran them."""
    seen: list[str] = []
    for run in batching["backends"].values():
        for lv in run["levels"]:
            if lv["kind"] not in seen:
                seen.append(lv["kind"])
    return seen


def _of_kind(levels: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [lv for lv in levels if lv["kind"] == kind]


def rows(batching: dict[str, Any]) -> list[list[Any]]:
    """Per backend and kind: each level, then the same clients on a worker that runs one stage
    at a time."""
    out: list[list[Any]] = []
    for backend, run in batching["backends"].items():
        for kind in kinds(batching):
            measured = [(str(lv["clients"]), lv) for lv in _of_kind(run["levels"], kind)]
            measured += [
                (f"{lv['clients']}, one stage at a time", lv)
                for lv in _of_kind(run["one_at_a_time"], kind)
            ]
            for clients, lv in measured:
                out.append(
                    [
                        backend,
                        KIND_NAMES.get(kind, kind),
                        clients,
                        lv["jobs"],
                        len(lv["errors"]),
                        lv["jobs_per_s"],
                        lv["job_ms"]["p50"],
                        lv["job_ms"]["p99"],
                        lv["mean_batch"],
                    ]
                )
    return out


@dataclass(frozen=True)
class Speedup:
    """Jobs per second at `clients` against `base_clients`, for one backend and kind."""

    backend: str
    kind: str
    base_jobs_per_s: float
    jobs_per_s: float
    # The same clients on a worker that runs one stage at a time (None if not measured).
    one_at_a_time_jobs_per_s: float | None
    target: float

    @property
    def name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)

    @property
    def label(self) -> str:
        """`backend, kind (ratio)` for the prose."""
        return f"{self.backend}, {self.name} ({self.ratio:.2f}\u00d7)"

    @property
    def ratio(self) -> float:
        return self.jobs_per_s / self.base_jobs_per_s

    @property
    def met(self) -> bool:
        return self.ratio >= self.target

    @property
    def over_one_at_a_time(self) -> float | None:
        if not self.one_at_a_time_jobs_per_s:
            return None
        return self.jobs_per_s / self.one_at_a_time_jobs_per_s


def speedups(batching: dict[str, Any], targets: dict[str, Any]) -> list[Speedup]:
    """The target's verdict for each backend and kind that has both levels."""
    clients, base = targets["batching_clients"], targets["batching_base_clients"]
    out = []
    for backend, run in batching["backends"].items():
        for kind in kinds(batching):
            at_base = level(_of_kind(run["levels"], kind), base)
            at_clients = level(_of_kind(run["levels"], kind), clients)
            if at_base is None or at_clients is None or not at_base["jobs_per_s"]:
                continue
            alone = level(_of_kind(run["one_at_a_time"], kind), clients)
            out.append(
                Speedup(
                    backend,
                    kind,
                    at_base["jobs_per_s"],
                    at_clients["jobs_per_s"],
                    alone["jobs_per_s"] if alone else None,
                    targets["batching_speedup"],
                )
            )
    return out


def speedup_rows(found: list[Speedup]) -> list[list[Any]]:
    """Per backend and kind: the two rates, their ratio and the verdict, and the batched rate
    against the same clients one stage at a time."""
    return [
        [
            s.backend,
            s.name,
            s.base_jobs_per_s,
            s.jobs_per_s,
            f"{s.ratio:.2f}\u00d7",
            verdict(s.met),
            DASH if s.over_one_at_a_time is None else f"{s.over_one_at_a_time:.2f}\u00d7",
        ]
        for s in found
    ]
