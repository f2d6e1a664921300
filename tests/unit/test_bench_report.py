"""docs/benchmarks.md is a template filled from bench/results/*.json: it renders from the
committed results, judges the batching target from the figures, and its prose holds no figure
of its own."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jinja2")

from bench import report

TEMPLATES = Path(report.__file__).parent / "templates"
# Digits the prose may hold: section numbers, issue numbers, names, paths, the load average's
# windows and an HTTP status. A measured or cited figure is none of these.
NAMES = {
    "1", "2", "3", "4", "5", "6", "7", "15", "1st", "202", "270M", "SmolLM2", "SmolLM2-135M",
    "S3", "S3Store", "boto3", "boto3's", "p50", "p99", "qwen2-audio", "BENCH_QUICK=1",
    "/v1/jobs", "/v1/audio/transcriptions", "bench/templates/benchmarks.md.j2",
}  # fmt: skip


def _committed() -> tuple[dict[str, Any], dict[str, Any]]:
    results = {name: report._load(name) for name in report.SUITES}
    reference = json.loads((report.RESULTS_DIR / "reference.json").read_text())
    return results, reference


def test_the_committed_results_render_every_section() -> None:
    results, reference = _committed()
    document = report.render(results, reference)
    headings = re.findall(r"^## (\d+)\. ", document, re.M)
    assert headings == ["1", "2", "3", "4", "5", "6", "7"]
    assert "## Findings and proposed fixes" in document
    for suite in results:
        assert f"]({report.plot_file(suite)})" in document
    gpu = document.split("## 6. GPU", 1)[1].split("\n## ", 1)[0]
    assert "Pending: no GPU was lent" in gpu
    assert "`make gpu-bundle`" in gpu and "`bench/gpu_check.py`" in gpu
    assert "(gpu.md#gpu-figures)" in gpu


def test_the_batching_target_is_judged_per_backend_and_kind_from_the_figures() -> None:
    results, reference = _committed()
    batching = copy.deepcopy(results["batching"])
    assert batching is not None
    levels = batching["backends"]["qwen2-audio"]["levels"]
    one = next(lv for lv in levels if lv["clients"] == 1 and lv["kind"] == "typed")
    eight = next(lv for lv in levels if lv["clients"] == 8 and lv["kind"] == "typed")
    eight["jobs_per_s"] = one["jobs_per_s"] * reference["targets"]["batching_speedup"]
    document = report.render({"batching": batching}, reference)
    met = re.search(r"^Met for (.*)\.$", document, re.M)
    missed = re.search(r"^Missed for (.*)\.$", document, re.M)
    assert met is not None and missed is not None
    assert met.group(1) == "qwen2-audio, typed question (3.00\u00d7)"
    assert "qwen2-audio, question about a recording" in missed.group(1)
    assert "qwen-audio-chat, typed question" in missed.group(1)


def test_a_report_of_some_suites_leaves_the_others_out() -> None:
    results, reference = _committed()
    document = report.render({"upload": results["upload"]}, reference)
    assert re.findall(r"^## (\d+)\. ", document, re.M) == ["4", "6"]
    assert "| upload |" in document and "| queue |" not in document


def test_the_prose_holds_no_figure_of_its_own() -> None:
    for template in sorted(TEMPLATES.glob("*.j2")):
        prose = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", template.read_text(), flags=re.S)
        figures = set(re.findall(r"[^\s`(]*\d[^\s`),.:;]*", prose)) - NAMES
        assert not figures, f"{template.name} states {sorted(figures)}: read them from the JSON"
