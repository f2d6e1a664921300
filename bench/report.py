"""Writes docs/benchmarks.md and docs/bench-*.png from bench/results/*.json.

The document is a Jinja2 template (bench/templates/benchmarks.md.j2 and its sections): the prose
is there, every figure comes from the results files, or is computed from them by the row
builders (report_tables.py, report_answers.py, report_batching.py). Targets and figures cited
from earlier runs are in bench/results/reference.json. Run `python -m bench.report` to
regenerate the document after a run (`make bench` does).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2

from bench import (
    report_answers,
    report_batching,
    report_findings,
    report_format,
    report_plots,
    report_tables,
    report_targets,
)

SUITES = ("queue", "e2e", "fanout", "upload", "batching", "answers")
# Not from bench.harness: rendering needs none of its packages (psutil), so tests can run it.
BENCH = Path(__file__).resolve().parent
TEMPLATES = BENCH / "templates"
RESULTS_DIR = BENCH / "results"
DOC = BENCH.parent / "docs" / "benchmarks.md"
PLOTS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
    "queue": report_plots.queue,
    "e2e": report_plots.e2e,
    "fanout": report_plots.fanout,
    "upload": report_plots.upload,
    "batching": report_plots.batching,
    "answers": report_plots.answers,
}


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(fmt=report_format.fmt, pct=report_format.pct)
    env.globals.update(
        table=report_format.table,
        verdict=report_format.verdict,
        share=report_format.share,
        function_name=report_format.function_name,
        tables=report_tables,
        target_rows=report_targets.target_rows,
        answers_rows=report_answers,
        batching_rows=report_batching,
        findings=report_findings,
    )
    return env


def plot_file(suite: str) -> str:
    """The plot of a suite, beside the document."""
    return f"bench-{suite}.png"


def draw_plots(present: dict[str, dict[str, Any]], targets: dict[str, Any]) -> None:
    """docs/bench-{suite}.png for each suite with results."""
    pyplot = report_plots.pyplot()
    for name, results in present.items():
        figure = PLOTS[name](results, targets)
        figure.savefig(DOC.parent / plot_file(name), dpi=110)
        pyplot.close(figure)


def render(results: dict[str, dict[str, Any] | None], reference: dict[str, Any]) -> str:
    """The document's Markdown for these results (the plots it links to are drawn apart)."""
    present = {name: r for name, r in results.items() if r is not None}
    if not present:
        raise SystemExit("no results in bench/results/: run `make bench` first")
    targets = reference["targets"]
    plots = {name: plot_file(name) for name in present}
    text = (
        _environment()
        .get_template("benchmarks.md.j2")
        .render(
            **{name: results.get(name) for name in SUITES},
            present=present,
            reference=reference,
            targets=targets,
            plots=plots,
            quick=any(r["quick"] for r in present.values()),
        )
    )
    # Sections that are left out leave blank lines behind; Markdown needs one between blocks.
    return _one_line_paragraphs(re.sub(r"\n{3,}", "\n\n", text).strip()) + "\n"


def _one_line_paragraphs(text: str) -> str:
    """Each paragraph on one line, as the template's wrapped prose renders anyway: a diff of
    the document then shows the figures that changed, not the lines that moved."""
    blocks = []
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.split("\n")]
        if len(lines) == 1 or lines[0].startswith(("|", "<!--", "```")):
            blocks.append(block)
        elif lines[0].startswith(">"):
            blocks.append("> " + " ".join(line.lstrip("> ") for line in lines))
        else:
            blocks.append(" ".join(lines))
    return "\n\n".join(blocks)


def write_report() -> Path:
    """Regenerate docs/benchmarks.md and its plots from the results files."""
    results = {name: _load(name) for name in SUITES}
    reference = json.loads((RESULTS_DIR / "reference.json").read_text())
    DOC.write_text(render(results, reference))
    draw_plots({name: r for name, r in results.items() if r is not None}, reference["targets"])
    print(f"[bench] wrote {DOC.relative_to(BENCH.parent)}", file=sys.stderr)
    return DOC


if __name__ == "__main__":
    write_report()
