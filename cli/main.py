"""`audiochat`: ask questions and follow jobs, run the gateway or a worker, start a local stack.

Commands that talk to a server take `--url` and `--api-key` (or `AUDIOCHAT_URL` and
`AUDIOCHAT_API_KEY`). Exit status: 0 when the job succeeded or the command did what it said,
1 when the server refused (the problem's message goes to stderr), could not be reached, or the
job failed or was canceled, 2 for a usage error.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import httpx
from rich.console import Console
from rich.text import Text

from cli.client import DIRECT_UPLOAD_BYTES, ApiError, AudiochatClient
from cli.stack import run_stack
from cli.views import job_details, job_table, watch
from shared.config import Settings
from shared.logging import configure_logging

console = Console()
errors = Console(stderr=True)

Command = TypeVar("Command", bound=Callable[..., Any])


def server_options(command: Command) -> Command:
    """`--url` and `--api-key`, for every command that talks to a server."""
    command = click.option(
        "--api-key",
        envvar="AUDIOCHAT_API_KEY",
        default=None,
        show_envvar=True,
        help="API key, sent as `Authorization: Bearer`.",
    )(command)
    return click.option(
        "--url",
        envvar="AUDIOCHAT_URL",
        default="http://127.0.0.1:8000",
        show_default=True,
        show_envvar=True,
        help="The gateway's address.",
    )(command)


def _fail(message: str) -> NoReturn:
    errors.print(Text.assemble(("error: ", "bold red"), message))
    sys.exit(1)


@contextmanager
def _talking_to(
    url: str, api_key: str | None, direct_upload_bytes: int = DIRECT_UPLOAD_BYTES
) -> Iterator[AudiochatClient]:
    """A client for `url`; a refusal or an unreachable server ends the command with status 1."""
    try:
        with AudiochatClient(url, api_key, direct_upload_bytes=direct_upload_bytes) as client:
            yield client
    except ApiError as exc:
        _fail(str(exc))
    except httpx.TransportError as exc:
        _fail(f"cannot reach {url}: {exc or type(exc).__name__} (is it running? `audiochat up`)")


def _exit_for(job: dict[str, Any]) -> None:
    """Status 1, with the job's error on stderr, unless the job succeeded."""
    if job["status"] == "succeeded":
        return
    error = job.get("error") or {}
    reason = f": {error.get('code')}: {error.get('message')}" if error else ""
    _fail(f"job {job['id']} {job['status']}{reason}")


@click.group()
def cli() -> None:
    """audiochat: ask questions by voice."""


# ---- running the parts ---------------------------------------------------------------------


@cli.command()
@click.option("--host", default=None, help="Address to listen on (default AUDIOCHAT_API_HOST).")
@click.option("--port", type=int, default=None, help="Port (default AUDIOCHAT_API_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the gateway."""
    import uvicorn

    from api.auth import check_listen_address
    from api.main import create_app

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    check_listen_address(host or settings.api_host, settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        # Uvicorn's own lines go through the handler configured above (text or JSON).
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=5,
    )


@cli.command()
def worker() -> None:
    """Run a worker for AUDIOCHAT_MODEL (loads the model, then consumes its queue)."""
    from worker.backends.local_models import ModelFilesError
    from worker.main import run_worker

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        run_worker(settings, loglevel=settings.log_level)
    except ModelFilesError as exc:
        # A setting names model files that are not there or not usable: say which, in one
        # line, rather than a traceback through the model libraries.
        logging.getLogger("worker").error("the worker cannot start: %s", exc)
        raise click.ClickException(str(exc)) from exc


@cli.command("webhook-worker")
def webhook_worker() -> None:
    """Run a webhook worker: delivers job events to their webhooks (no model, no store)."""
    from webhooks.main import run_webhook_worker

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    run_webhook_worker(settings, loglevel=settings.log_level)


@cli.command()
@click.option("--port", envvar="API_PORT", default=8000, show_default=True, help="Gateway port.")
@click.option("--redis-port", envvar="REDIS_PORT", default=6379, show_default=True)
@click.option("--model", envvar="AUDIOCHAT_MODEL", default="embedded", show_default=True)
def up(port: int, redis_port: int, model: str) -> None:
    """Start Redis, the gateway and a worker in the background (what `make up` starts)."""
    env = {"API_PORT": str(port), "REDIS_PORT": str(redis_port), "AUDIOCHAT_MODEL": model}
    sys.exit(run_stack("up", env))


@cli.command()
@click.option("--redis-port", envvar="REDIS_PORT", default=6379, show_default=True)
def down(redis_port: int) -> None:
    """Stop what `audiochat up` (or `make up`) started."""
    sys.exit(run_stack("down", {"REDIS_PORT": str(redis_port)}))


# ---- asking ----------------------------------------------------------------------------------


@cli.command()
@click.argument(
    "audio", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=False
)
@click.option("--question", "-q", help="A question about the audio.")
@click.option("--text", "-t", "text", help="Ask a typed question (no audio).")
@click.option("--model", help="Model to use (default: the server's).")
@click.option("--max-new-tokens", type=int, help="Longest answer, in tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print the final job record as JSON.")
@click.option(
    "--direct-upload-over",
    type=click.IntRange(min=0),
    default=DIRECT_UPLOAD_BYTES,
    show_default=True,
    envvar="AUDIOCHAT_DIRECT_UPLOAD_BYTES",
    help="Files larger than this many bytes go straight to the S3 store (presigned upload).",
)
@server_options
def ask(
    audio: Path | None,
    question: str | None,
    text: str | None,
    model: str | None,
    max_new_tokens: int | None,
    as_json: bool,
    direct_upload_over: int,
    url: str,
    api_key: str | None,
) -> None:
    """Ask a spoken question (AUDIO), a question about it (--question), or a typed one (--text)."""
    if audio is None and not text:
        raise click.UsageError("give an AUDIO file or --text")
    with _talking_to(url, api_key, direct_upload_over) as client:
        job = client.submit(
            audio, question if audio else text, model=model, max_new_tokens=max_new_tokens
        )
        if as_json:
            for _event in client.follow(job["id"]):
                pass
        else:
            watch(console, job["id"], client.follow(job["id"]))
        final = client.get(job["id"])
    if as_json:
        click.echo(json.dumps(final, indent=2))
    _exit_for(final)


# ---- jobs ------------------------------------------------------------------------------------


@cli.group()
def keys() -> None:
    """API keys."""


@keys.command("new")
@click.option("--tenant", required=True, help="The tenant the key belongs to.")
def new_key(tenant: str) -> None:
    """Make a key for TENANT: print it once, and the entry the gateway needs (its hash)."""
    from api.auth import hash_api_key, new_api_key

    key = new_api_key()
    click.echo(f"key (give it to the client; it is not stored anywhere): {key}")
    click.echo(f'add to AUDIOCHAT_API_KEYS: "{hash_api_key(key)}": "{tenant}"')


@cli.group()
def webhooks() -> None:
    """The webhook signing secret of your API key's tenant."""


@webhooks.command("secret")
@server_options
def webhook_secret(url: str, api_key: str | None) -> None:
    """Make a new signing secret (or rotate it) and print it: it is shown this once."""
    with _talking_to(url, api_key) as client:
        info = client.rotate_webhook_secret()
    click.echo(info["secret"])
    if info.get("previous_expires_at"):
        errors.print(
            "the previous secret also signs deliveries until "
            f"{datetime.fromtimestamp(info['previous_expires_at'], UTC):%Y-%m-%d %H:%M} UTC"
        )


@cli.group()
def jobs() -> None:
    """List, show, follow and cancel jobs."""


@jobs.command("list")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@server_options
def list_jobs(limit: int, as_json: bool, url: str, api_key: str | None) -> None:
    """Recent jobs, newest first."""
    with _talking_to(url, api_key) as client:
        records = client.list(limit)
    if as_json:
        click.echo(json.dumps(records, indent=2))
    elif records:
        console.print(job_table(records))
    else:
        console.print("no jobs")


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@server_options
def show_job(job_id: str, as_json: bool, url: str, api_key: str | None) -> None:
    """A job's status, timings, transcript, answer and error."""
    with _talking_to(url, api_key) as client:
        record = client.get(job_id)
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        console.print(job_details(record))


@jobs.command("follow")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print each event as a line of JSON.")
@server_options
def follow_job(job_id: str, as_json: bool, url: str, api_key: str | None) -> None:
    """Follow a job live to its end (from its first event); status 1 unless it succeeds."""
    with _talking_to(url, api_key) as client:
        if as_json:
            for event in client.follow(job_id):
                click.echo(event.model_dump_json())
        else:
            watch(console, job_id, client.follow(job_id))
        final = client.get(job_id)
    _exit_for(final)


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job's record as JSON.")
@server_options
def cancel_job(job_id: str, as_json: bool, url: str, api_key: str | None) -> None:
    """Cancel a job that has not ended (a job that has ended: status 1, `job-finished`)."""
    with _talking_to(url, api_key) as client:
        record = client.cancel(job_id)
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        console.print(Text.assemble("job ", (record["id"], "bold"), f" {record['status']}"))


if __name__ == "__main__":
    cli()
