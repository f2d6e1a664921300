"""`audiochat`: serve the gateway, run a worker, or ask a question and watch it answered."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from cli.client import ApiError, AudiochatClient
from shared.config import Settings
from shared.schemas import EventName

console = Console()
errors = Console(stderr=True)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@click.group()
def cli() -> None:
    """audiochat: ask questions by voice."""


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default AUDIOCHAT_API_HOST).")
@click.option("--port", type=int, default=None, help="Port (default AUDIOCHAT_API_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the gateway."""
    import uvicorn

    from api.main import create_app

    settings = Settings()
    _configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )


@cli.command()
def worker() -> None:
    """Run a worker for AUDIOCHAT_MODEL (loads the model, then consumes its queue)."""
    from worker.main import run_worker

    settings = Settings()
    _configure_logging(settings.log_level)
    run_worker(settings, loglevel=settings.log_level)


@cli.command()
@click.argument(
    "audio", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False
)
@click.option("--question", "-q", help="A question about the audio.")
@click.option("--text", "-t", "text", help="Ask a typed question (no audio).")
@click.option("--model", help="Model to use (default: the server's).")
@click.option("--max-new-tokens", type=int, help="Longest answer, in tokens.")
@click.option("--url", envvar="AUDIOCHAT_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--api-key", envvar="AUDIOCHAT_API_KEY", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the final job record as JSON.")
def ask(
    audio: Path | None,
    question: str | None,
    text: str | None,
    model: str | None,
    max_new_tokens: int | None,
    url: str,
    api_key: str | None,
    as_json: bool,
) -> None:
    """Ask a spoken question (AUDIO), a question about it (--question), or a typed one (--text)."""
    if audio is None and not text:
        raise click.UsageError("give an AUDIO file or --text")
    client = AudiochatClient(url, api_key)
    try:
        job = client.submit(
            audio, question if audio else text, model=model, max_new_tokens=max_new_tokens
        )
        if as_json:
            for _event in client.follow(job["id"]):
                pass
        else:
            _watch(client, job["id"])
        final = client.get(job["id"])
    except ApiError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        sys.exit(1)
    finally:
        client.close()
    if as_json:
        click.echo(json.dumps(final, indent=2))
    if final["status"] != "succeeded":
        error = final.get("error") or {}
        errors.print(
            f"[red]job {final['status']}:[/red] {error.get('code')}: {error.get('message')}"
        )
        sys.exit(1)


def _watch(client: AudiochatClient, job_id: str) -> None:
    """Show a job live: status and elapsed time, then transcript and answer as they stream."""
    started = time.monotonic()
    status = "queued"
    transcript = ""
    answer = ""

    def view() -> Group:
        header = Text.assemble(
            ("job ", "dim"),
            (job_id, "bold"),
            ("  ", ""),
            (status, "cyan"),
            (f"  {time.monotonic() - started:.1f} s", "dim"),
        )
        parts = [header]
        if transcript:
            parts.append(Text.assemble(("heard: ", "bold green"), transcript.strip()))
        if answer:
            parts.append(Text.assemble(("answer: ", "bold magenta"), answer.strip()))
        return Group(*parts)

    with Live(view(), console=console, refresh_per_second=10, transient=False) as live:
        for event in client.follow(job_id):
            if event.event is EventName.STATUS:
                status = event.data["status"]
            elif event.event is EventName.TRANSCRIPT_DELTA:
                transcript += event.data["text"]
            elif event.event is EventName.TRANSCRIPT_COMPLETED:
                transcript = event.data["text"]
            elif event.event is EventName.ANSWER_DELTA:
                answer += event.data["text"]
            elif event.event is EventName.ANSWER_COMPLETED:
                answer = event.data["text"]
            elif event.event is EventName.ERROR:
                status = f"failed: {event.data['code']}"
            live.update(view())
    console.print()


if __name__ == "__main__":
    cli()
