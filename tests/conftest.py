"""Fixtures that start real parts: redis-server, an S3 server, gateways and Celery workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.paths import REPO_ROOT
from testbed.processes import S3_ENV, Gateway, RedisServer, S3Server, Worker
from tests.support.stack import Stack

SHARED_AUDIO = REPO_ROOT.parent / "shared" / "audio"


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    """../shared/audio beside the checkout: real speech with reference transcripts."""
    if not (SHARED_AUDIO / "1272-128104-0000.flac").exists():
        pytest.fail(
            f"{SHARED_AUDIO} is missing: these tests need the project's shared/ folder "
            "beside the checkout (CI provides it)."
        )
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audiochat")


@pytest.fixture(scope="session")
def redis_server(workdir: Path) -> Iterator[RedisServer]:
    server = RedisServer(workdir / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(workdir: Path) -> Iterator[S3Server]:
    server = S3Server(workdir)
    server.start()
    yield server
    server.stop()


def start_stack(
    workdir: Path, redis_url: str, env: dict[str, str], workers: dict[str, dict[str, str]]
) -> Stack:
    """Start a gateway and named workers sharing `env`; each worker adds its own settings."""
    base = {"AUDIOCHAT_REDIS_URL": redis_url, "AUDIOCHAT_LOG_LEVEL": "INFO", **env}
    started: list[Worker] = []
    gateway = Gateway(base, workdir, name="gateway")
    try:
        gateway.start()
        for name, extra in workers.items():
            worker = Worker({**base, **extra}, workdir, name)
            started.append(worker)
            worker.start()
    except BaseException:
        for worker in started:
            worker.stop()
        gateway.stop()
        raise
    return Stack(gateway, started, redis_url, base, workdir)


@pytest.fixture(scope="session")
def stack(workdir: Path, redis_server: RedisServer, s3_server: S3Server) -> Iterator[Stack]:
    """Gateway on the S3 store, with an embedded-model worker and an echo worker."""
    env = {
        "AUDIOCHAT_STORAGE_URL": "s3://audiochat-test",
        "AUDIOCHAT_S3__ENDPOINT_URL": s3_server.endpoint_url,
        **S3_ENV,
    }
    running = start_stack(
        workdir / "s3-stack",
        redis_server.url(0),
        env,
        {
            "worker-embedded": {"AUDIOCHAT_MODEL": "embedded"},
            "worker-echo": {"AUDIOCHAT_MODEL": "echo"},
        },
    )
    yield running
    running.close()


@pytest.fixture(scope="session")
def local_stack(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    """Gateway on the local-directory store (the embedded default), with an echo worker."""
    env = {"AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'objects'}", "AUDIOCHAT_MODEL": "echo"}
    running = start_stack(workdir / "local-stack", redis_server.url(1), env, {"worker-echo": {}})
    yield running
    running.close()


@pytest.fixture(scope="session")
def fake_stack(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    """A stack whose `echo` worker runs a scripted fake backend (tests/fakes/backends.py)."""
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'fake-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_REDIS_MAX_CONNECTIONS": "4",
    }
    running = start_stack(
        workdir / "fake-stack",
        redis_server.url(2),
        env,
        {"worker-fake": {"AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:ScriptedBackend"}},
    )
    yield running
    running.close()
