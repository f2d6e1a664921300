"""Where the checkout is, for child processes started from its root (imports nothing else)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
