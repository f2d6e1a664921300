"""Starting and stopping the real parts audiochat runs on, each on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from shared.redis_keys import webhook_dispatcher_key
from testbed.paths import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessExited(RuntimeError):
    """A process a test waits on has died: waiting longer is pointless."""


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `check` until it is true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ProcessExited:
            raise
        except Exception:
            pass
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class Process:
    """A child process with its output in a log file, so a failing test can show it."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **self.env},
            start_new_session=True,
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.send_signal(sig)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class RedisServer:
    """A real redis-server on a free loopback port, without persistence."""

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test` (it installs it)")
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = Process(
            "redis",
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                # Later options win: a test may turn persistence on, for instance.
                *extra_args,
            ],
            workdir / "redis.log",
        )

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db))

    def start(self) -> None:
        self.process.start()
        wait_for(lambda: bool(self.client().ping()), 10, "redis-server")

    def stop(self) -> None:
        self.process.stop()


class S3Server:
    """moto in server mode: a real S3-compatible HTTP server on loopback."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.process = Process(
            "s3",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            workdir / "s3.log",
        )

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process.start()
        wait_for(
            lambda: httpx.get(self.endpoint_url + "/moto-api/", timeout=1).status_code < 500,
            30,
            "the S3 server",
        )

    def stop(self) -> None:
        self.process.stop()


# Credentials for the S3 test server; moto accepts any.
S3_ENV = {
    "AUDIOCHAT_S3__ACCESS_KEY_ID": "testing",
    "AUDIOCHAT_S3__SECRET_ACCESS_KEY": "testing",
    "AUDIOCHAT_S3__REGION": "us-east-1",
}


def audiochat_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


class Gateway:
    """`audiochat serve` on a free port."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str = "gateway") -> None:
        self.port = free_port()
        self.process = Process(
            name,
            audiochat_command("serve", "--port", str(self.port)),
            workdir / f"{name}.log",
            env,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        self.process.start()

        def ready() -> bool:
            if not self.process.alive():
                raise ProcessExited(f"gateway exited:\n{self.process.log_tail()}")
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200

        try:
            wait_for(ready, timeout, "the gateway to be ready")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.process.log_tail()}") from exc

    def stop(self) -> None:
        self.process.stop()


class Worker:
    """`audiochat worker` for one model; ready once its heartbeat is in Redis."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str) -> None:
        self.name = name
        self.env = env
        self.process = Process(name, audiochat_command("worker"), workdir / f"{name}.log", env)

    def start(self, timeout: float = 180) -> None:
        from shared.workers import WorkerRegistry

        self.process.start()
        registry = WorkerRegistry(redis.Redis.from_url(self.env["AUDIOCHAT_REDIS_URL"]))

        def ready() -> bool:
            if not self.process.alive():
                raise ProcessExited(f"worker exited:\n{self.process.log_tail()}")
            return any(w.pid == self.process.pid for w in registry.live_workers())

        try:
            wait_for(ready, timeout, f"worker {self.name} to be ready", interval=0.2)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.process.log_tail()}") from exc

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.stop(sig)


class WebhookWorker:
    """`audiochat webhook-worker`; ready once its dispatcher has marked itself alive."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str = "webhook-worker") -> None:
        self.env = env
        self.process = Process(
            name, audiochat_command("webhook-worker"), workdir / f"{name}.log", env
        )

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        client = redis.Redis.from_url(self.env["AUDIOCHAT_REDIS_URL"])
        key = webhook_dispatcher_key(f"webhooks-{self.process.pid}@{socket.gethostname()}")

        def ready() -> bool:
            if not self.process.alive():
                raise ProcessExited(f"webhook worker exited:\n{self.process.log_tail()}")
            return bool(client.exists(key))

        try:
            wait_for(ready, timeout, "the webhook worker to be ready", interval=0.1)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}\n{self.process.log_tail()}") from exc

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.process.stop(sig)
