"""The `audiochat` command, run as a real process against a real stack: output and exit status.

The stack's worker runs the scripted backend (tests/fakes/backends.py): `tokens:N` answers with
N tokens, `slow:N` with N tokens 50 ms apart, `fail:N` fails after N tokens.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.auth import hash_api_key
from shared.jobs import utcnow
from shared.workers import WorkerInfo, WorkerRegistry
from testbed.paths import REPO_ROOT
from testbed.processes import RedisServer, audiochat_command, free_port
from tests.conftest import start_stack
from tests.support.stack import Stack

API_KEY = "ac_cli_test_key"


def audiochat(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `audiochat ARGS` to its end, as a user would, and capture what it printed."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUDIOCHAT_")}
    return subprocess.run(
        audiochat_command(*args),
        cwd=REPO_ROOT,
        env={**base, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def keyed_stack(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    """A gateway that needs an API key, with the scripted backend."""
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'cli-keyed-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_API_KEYS": json.dumps({hash_api_key(API_KEY): "cli"}),
    }
    running = start_stack(
        workdir / "cli-keyed-stack",
        redis_server.url(14),
        env,
        {"worker-cli": {"AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:ScriptedBackend"}},
    )
    yield running
    running.close()


def test_ask_text_shows_the_answer_and_exits_zero(fake_stack: Stack) -> None:
    result = audiochat("ask", "--text", "hello there", "--url", fake_stack.url)
    assert result.returncode == 0, result.stderr
    assert "answer: echo: hello there" in result.stdout
    assert "succeeded" in result.stdout


def test_ask_audio_shows_the_transcript_then_the_answer(
    fake_stack: Stack, shared_audio: Path
) -> None:
    audio = shared_audio / "1272-128104-0000.flac"
    result = audiochat("ask", str(audio), "--question", "who speaks?", "--url", fake_stack.url)
    assert result.returncode == 0, result.stderr
    assert "heard: heard 5.9 seconds" in result.stdout
    assert "answer: echo with 1 audio part: who speaks?" in result.stdout


def test_ask_json_prints_the_final_record(fake_stack: Stack) -> None:
    result = audiochat("ask", "--text", "tokens:3", "--json", "--url", fake_stack.url)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "succeeded"
    assert record["answer"] == "t0 t1 t2"
    assert fake_stack.job(record["id"])["answer"] == "t0 t1 t2"


def test_a_failed_job_exits_one_with_its_error(fake_stack: Stack) -> None:
    result = audiochat("ask", "--text", "fail:3", "--url", fake_stack.url)
    assert result.returncode == 1
    assert "failed: model-error: RuntimeError: scripted failure" in result.stderr
    # What streamed before the failure was shown (the first token is published at once).
    assert "answer: f0" in result.stdout
    assert "error: model-error: RuntimeError: scripted failure" in result.stdout


def test_a_failed_job_with_json_still_prints_its_record(fake_stack: Stack) -> None:
    result = audiochat("ask", "--text", "fail:1", "--json", "--url", fake_stack.url)
    assert result.returncode == 1
    record = json.loads(result.stdout)
    assert record["status"] == "failed"
    assert record["error"]["code"] == "model-error"


def test_a_refused_request_exits_one_with_the_problem(fake_stack: Stack) -> None:
    result = audiochat("ask", "--text", "hi", "--model", "no-such-model", "--url", fake_stack.url)
    assert result.returncode == 1
    assert "422 unknown-model: unknown model 'no-such-model'" in result.stderr


def test_jobs_show_follow_and_list(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("tokens:4")

    followed = audiochat("jobs", "follow", job["id"], "--url", fake_stack.url)
    assert followed.returncode == 0, followed.stderr
    assert "answer: t0 t1 t2 t3" in followed.stdout

    shown = audiochat("jobs", "show", job["id"], "--url", fake_stack.url)
    assert shown.returncode == 0, shown.stderr
    assert job["id"] in shown.stdout
    assert "succeeded" in shown.stdout
    assert "t0 t1 t2 t3" in shown.stdout

    as_json = audiochat("jobs", "show", job["id"], "--json", "--url", fake_stack.url)
    assert json.loads(as_json.stdout) == fake_stack.job(job["id"])

    listed = audiochat("jobs", "list", "--limit", "200", "--url", fake_stack.url)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if job["id"] in line)
    assert "succeeded" in row and "tokens:4" in row

    listed_json = audiochat("jobs", "list", "--limit", "200", "--json", "--url", fake_stack.url)
    assert job["id"] in [record["id"] for record in json.loads(listed_json.stdout)]


def test_jobs_follow_json_prints_every_event_and_fails_with_the_job(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("fail:2")
    result = audiochat("jobs", "follow", job["id"], "--json", "--url", fake_stack.url)
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1] == {"id": len(events), "event": "done", "data": {"status": "failed"}}
    assert {"code": "model-error", "message": "RuntimeError: scripted failure"} in [
        e["data"] for e in events if e["event"] == "error"
    ]
    assert "model-error" in result.stderr


def test_url_comes_from_the_environment(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("tokens:1")
    fake_stack.run(job)
    result = audiochat("jobs", "show", job["id"], env={"AUDIOCHAT_URL": fake_stack.url})
    assert result.returncode == 0, result.stderr
    assert "t0" in result.stdout


def test_api_key_comes_from_the_flag_or_the_environment(keyed_stack: Stack) -> None:
    refused = audiochat("jobs", "list", "--url", keyed_stack.url)
    assert refused.returncode == 1
    assert "401 unauthorized" in refused.stderr

    wrong = audiochat("jobs", "list", "--url", keyed_stack.url, "--api-key", "not-it")
    assert wrong.returncode == 1
    assert "401 unauthorized" in wrong.stderr

    env = {"AUDIOCHAT_URL": keyed_stack.url, "AUDIOCHAT_API_KEY": API_KEY}
    asked = audiochat("ask", "--text", "tokens:2", "--json", env=env)
    assert asked.returncode == 0, asked.stderr
    job = json.loads(asked.stdout)
    assert job["answer"] == "t0 t1"

    listed = audiochat("jobs", "list", "--json", "--url", keyed_stack.url, "--api-key", API_KEY)
    assert listed.returncode == 0, listed.stderr
    assert [record["id"] for record in json.loads(listed.stdout)] == [job["id"]]


def test_an_unknown_job_exits_one_with_404(fake_stack: Stack) -> None:
    result = audiochat("jobs", "show", "0" * 32, "--url", fake_stack.url)
    assert result.returncode == 1
    assert f"404 job-not-found: no job {'0' * 32}" in result.stderr


def test_an_unreachable_server_exits_one(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = audiochat("jobs", "list", "--url", url)
    assert result.returncode == 1
    assert f"cannot reach {url}" in result.stderr


def test_cancel_a_running_job_then_again(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("slow:400")  # 20 s of tokens: it is still running when canceled
    canceled = audiochat("jobs", "cancel", job["id"], "--url", fake_stack.url)
    assert canceled.returncode == 0, canceled.stderr
    assert f"job {job['id']} canceled" in canceled.stdout
    events = fake_stack.events(job["id"])
    assert events[-1].event == "done" and events[-1].data == {"status": "canceled"}

    again = audiochat("jobs", "cancel", job["id"], "--url", fake_stack.url)
    assert again.returncode == 1
    assert "409 job-finished" in again.stderr

    unknown = audiochat("jobs", "cancel", "0" * 32, "--url", fake_stack.url)
    assert unknown.returncode == 1
    assert "404 job-not-found" in unknown.stderr


@pytest.mark.slow
def test_up_starts_a_stack_that_answers_and_down_stops_it() -> None:
    api_port, redis_port = free_port(), free_port()
    run_dir = f".run/test-{api_port}"  # its own pid files: a stack someone started stays alone
    env = {
        "RUN_DIR": run_dir,
        "AUDIOCHAT_STORAGE_URL": f"file://{REPO_ROOT / run_dir / 'objects'}",
    }
    ports = ["--redis-port", str(redis_port)]
    url = f"http://127.0.0.1:{api_port}"
    try:
        started = audiochat(
            "up", "--port", str(api_port), *ports, "--model", "echo", env=env, timeout=300
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"gateway: {url}" in started.stdout
        assert "worker: ready" in started.stdout

        asked = audiochat("ask", "--text", "are you up?", "--url", url)
        assert asked.returncode == 0, asked.stderr
        assert "You asked: are you up?" in asked.stdout
    finally:
        stopped = audiochat("down", *ports, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/healthz", timeout=2)
    assert not list((REPO_ROOT / run_dir).glob("*.pid"))
    shutil.rmtree(REPO_ROOT / run_dir)  # kept when the test fails: its logs are there


@pytest.mark.slow
def test_up_is_ready_only_once_its_own_worker_beats(tmp_path: Path) -> None:
    """Right after a worker crash its heartbeat lives on for its TTL: `up` must wait for the
    worker it started (here one whose model takes 4 s to load), not count the dead one's."""
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    api_port = free_port()
    run_dir = f".run/test-{api_port}"
    env = {
        "RUN_DIR": run_dir,
        "AUDIOCHAT_STORAGE_URL": f"file://{REPO_ROOT / run_dir / 'objects'}",
        "AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:SlowLoadingBackend",
    }
    ports = ["--redis-port", str(redis_server.port)]
    registry = WorkerRegistry(redis_server.client())
    crashed = WorkerInfo(
        name=f"echo-999999@{socket.gethostname()}",
        model="echo",
        queue="model.echo",
        device="cpu",
        pid=999_999,
        hostname=socket.gethostname(),
        started_at=utcnow(),
    )
    try:
        registry.beat(crashed)
        started = audiochat("up", "--port", str(api_port), *ports, "--model", "echo", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "worker: ready" in started.stdout
        pid = int((REPO_ROOT / run_dir / "worker.pid").read_text())
        assert pid in [w.pid for w in registry.live_workers("echo")]
    finally:
        stopped = audiochat("down", *ports, env=env)
        redis_server.stop()
    assert stopped.returncode == 0, stopped.stderr
    shutil.rmtree(REPO_ROOT / run_dir)


@pytest.mark.slow
def test_up_fails_at_once_when_its_worker_exits(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    api_port = free_port()
    run_dir = f".run/test-{api_port}"
    env = {
        "RUN_DIR": run_dir,
        "AUDIOCHAT_STORAGE_URL": f"file://{REPO_ROOT / run_dir / 'objects'}",
        "AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:NoSuchBackend",
    }
    ports = ["--redis-port", str(redis_server.port)]
    try:
        started = audiochat("up", "--port", str(api_port), *ports, "--model", "echo", env=env)
        assert started.returncode == 1
        assert "worker: ready" not in started.stdout
        assert "the worker exited" in started.stderr
    finally:
        audiochat("down", *ports, env=env)
        redis_server.stop()
    shutil.rmtree(REPO_ROOT / run_dir)
