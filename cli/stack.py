"""`audiochat up` and `down`: the local stack `make up` starts, by the very same script.

The script (`scripts/stack.sh`) lives in the source checkout, not in the installed package: a
deployment runs the compose file instead (deploy/docker-compose.yml).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

STACK_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "stack.sh"


def run_stack(action: str, env: dict[str, str]) -> int:
    """Run `stack.sh up|down` with `env` added to this process's environment; its exit status."""
    if not STACK_SCRIPT.is_file():
        raise click.ClickException(
            f"`audiochat {action}` runs {STACK_SCRIPT}, which only a source checkout has; "
            "elsewhere use deploy/docker-compose.yml"
        )
    merged = {**os.environ, **env}
    # The stack runs the `audiochat` of this very environment, wherever it was installed.
    if "VENV" not in merged and (Path(sys.prefix) / "bin" / "audiochat").exists():
        merged["VENV"] = sys.prefix
    return subprocess.call(["bash", str(STACK_SCRIPT), action], env=merged)
