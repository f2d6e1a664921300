"""How the CLI shows jobs in a terminal: live while they run, as a table, or in full."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shared.schemas import EventName, JobEvent

_STATUS_STYLES = {
    "queued": "cyan",
    "transcribing": "yellow",
    "answering": "yellow",
    "succeeded": "green",
    "failed": "red",
    "canceled": "red",
}


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLES.get(status, "white"))


class LiveJob:
    """A job's state as its events arrive, drawn as a few lines that redraw in place."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.started = time.monotonic()
        self.status = "queued"
        self.transcript = ""
        self.answer = ""
        self.error: tuple[str, str] | None = None

    def apply(self, event: JobEvent) -> None:
        data = event.data
        if event.event is EventName.STATUS or event.event is EventName.DONE:
            self.status = data["status"]
        elif event.event is EventName.TRANSCRIPT_DELTA:
            self.transcript += data["text"]
        elif event.event is EventName.TRANSCRIPT_COMPLETED:
            self.transcript = data["text"]
        elif event.event is EventName.ANSWER_DELTA:
            self.answer += data["text"]
        elif event.event is EventName.ANSWER_COMPLETED:
            self.answer = data["text"]
        elif event.event is EventName.ERROR:
            self.error = (data["code"], data["message"])

    def render(self) -> Group:
        header = Text.assemble(
            ("job ", "dim"),
            (self.job_id, "bold"),
            "  ",
            _status(self.status),
            (f"  {time.monotonic() - self.started:.1f} s", "dim"),
        )
        lines = [header]
        if self.transcript:
            lines.append(Text.assemble(("heard: ", "bold green"), self.transcript.strip()))
        if self.answer:
            lines.append(Text.assemble(("answer: ", "bold magenta"), self.answer.strip()))
        if self.error:
            code, message = self.error
            lines.append(Text.assemble(("error: ", "bold red"), f"{code}: {message}"))
        return Group(*lines)


def watch(console: Console, job_id: str, events: Iterable[JobEvent]) -> LiveJob:
    """Show a job live until its events end: status and elapsed time, then the text streams."""
    state = LiveJob(job_id)
    # `get_renderable` is called on every refresh, so the elapsed time ticks while queued.
    with Live(console=console, get_renderable=state.render, refresh_per_second=8):
        for event in events:
            state.apply(event)
    if not console.is_terminal:
        console.print()  # Live ends its last line itself only on a terminal
    return state


def job_table(jobs: list[dict[str, Any]]) -> Table:
    """Jobs, one per row: id, status, model, when, and what was asked."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    # Ids are shown whole, to be copied into `jobs show`; the question gives way instead.
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("status", no_wrap=True, min_width=12)
    table.add_column("model", no_wrap=True, overflow="ellipsis")
    table.add_column("created", no_wrap=True, min_width=11)
    table.add_column("question", no_wrap=True, overflow="ellipsis", min_width=10)
    for job in jobs:
        asked = job.get("question") or job.get("transcript") or ""
        if not job.get("question") and job.get("has_audio"):
            asked = f"(audio) {asked}".strip()
        table.add_row(
            job["id"],
            _status(job["status"]),
            job["model"],
            str(job["created_at"])[5:16].replace("T", " "),  # MM-DD HH:MM, UTC
            asked.replace("\n", " "),
        )
    return table


def job_details(job: dict[str, Any]) -> Group:
    """One job in full: status, timings, and what was heard, asked and answered."""
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold")
    rows.add_column()
    rows.add_row("id", job["id"])
    rows.add_row("status", _status(job["status"]))
    rows.add_row("model", job["model"])
    for field in ("created_at", "started_at", "finished_at"):
        if job.get(field):
            rows.add_row(field.removesuffix("_at"), str(job[field]))
    durations = job.get("durations") or {}
    timings = ", ".join(
        f"{name.removesuffix('_seconds')} {seconds:.2f} s"
        for name, seconds in durations.items()
        if seconds is not None
    )
    if timings:
        rows.add_row("took", timings)
    for field in ("question", "transcript", "answer"):
        if job.get(field):
            rows.add_row(field, job[field])
    if job.get("error"):
        rows.add_row("error", Text(f"{job['error']['code']}: {job['error']['message']}", "red"))
    return Group(rows)
