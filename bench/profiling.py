"""Sampling profiles of running processes with py-spy, summarised into tables.

py-spy attaches to a process by pid (no change to the code under test), samples the thread
holding the GIL, and writes collapsed stacks; `summarise` turns those into the functions that
cost the most, by self time and, for audiochat's own code, inclusive time.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, log

# py-spy names files relative to sys.path entries: the repository's own are `api/…`, `shared/…`.
_OWN_CODE = tuple(
    f"{prefix}{part}/"
    for prefix in ("", f"{REPO_ROOT}/")
    for part in ("api", "shared", "worker", "cli", "bench")
)


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profile:
    """`with Profile(pid, out):` records py-spy samples of `pid` into `out` while in the block."""

    def __init__(self, pid: int, out: Path, rate: int = 250) -> None:
        self.pid, self.out, self.rate = pid, out, rate
        self._popen: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def __enter__(self) -> Profile:
        binary = _py_spy()
        if binary is None:
            self.error = "py-spy is not installed (pip install py-spy)"
            return self
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.unlink(missing_ok=True)
        # --gil: only the thread holding the GIL, i.e. where Python spends CPU;
        # --nonblocking: never pause the process being measured.
        args = ["record", "--pid", str(self.pid), "--rate", str(self.rate), "--format", "raw"]
        args += ["--nolineno", "--gil", "--nonblocking", "--output", str(self.out)]
        self._popen = subprocess.Popen(
            [binary, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._popen is None:
            return
        self._popen.send_signal(signal.SIGINT)
        try:
            _, err = self._popen.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            _, err = self._popen.communicate()
        if not self.out.exists():
            self.error = f"py-spy wrote nothing: {err.decode(errors='replace')[-300:]}"
            log(self.error)

    def summary(self, top: int = 15) -> dict[str, Any]:
        if self.error is not None or not self.out.exists():
            return {"error": self.error or "no profile"}
        return summarise(self.out, top)


def _short(frame: str) -> str:
    """`func (/path/to/file.py)` -> `func (file.py)`, paths inside the repo kept relative."""
    name, _, rest = frame.partition(" (")
    path = rest.rstrip(")")
    if path.startswith(str(REPO_ROOT) + "/"):
        path = path[len(str(REPO_ROOT)) + 1 :]
    elif "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    else:
        path = Path(path).name
    return f"{name} ({path})"


def summarise(raw: Path, top: int = 15) -> dict[str, Any]:
    """Top frames by self samples, and audiochat's frames by inclusive samples, as shares."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # The first frame is the thread ("process N:…" / "thread (0x…)") on some versions.
        frames = [f for f in frames if " (" in f]
        if not frames:
            continue
        total += count
        self_counts[_short(frames[-1])] += count
        for frame in {f for f in frames if f.partition(" (")[2].startswith(_OWN_CODE)}:
            inclusive[_short(frame)] += count

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "share": round(n / total, 4)} for frame, n in counter.most_common(top)
        ]

    return {"samples": total, "self": shares(self_counts), "inclusive_own": shares(inclusive)}
