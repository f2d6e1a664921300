"""deploy/nginx.conf, the compose file's proxy, run by a real nginx in front of a real gateway:
it cuts clients that send headers too slowly (uvicorn cannot), and passes events through."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import connect_sse

from testbed.paths import REPO_ROOT
from testbed.processes import Process, free_port, wait_for
from tests.support.stack import Stack

CONFIG = REPO_ROOT / "deploy" / "nginx.conf"
HEADER_TIMEOUT = 10  # client_header_timeout in the config


@pytest.fixture(scope="module")
def proxy(fake_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("nginx")
    if binary is None:
        pytest.fail("nginx is not installed: run `make test` (it installs it)")
    workdir = tmp_path_factory.mktemp("proxy")
    port = free_port()
    # The compose file's config, pointed at this gateway and port instead of the services'.
    config = CONFIG.read_text()
    assert "server gateway:8000;" in config and "listen 8080;" in config
    config = config.replace("server gateway:8000;", f"server 127.0.0.1:{fake_stack.gateway.port};")
    config = config.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    (workdir / "nginx.conf").write_text(config)
    process = Process(
        "nginx",
        [
            binary,
            "-p",
            str(workdir),
            "-c",
            str(workdir / "nginx.conf"),
            "-g",
            f"daemon off; pid {workdir / 'nginx.pid'};",
        ],
        workdir / "nginx.log",
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, 20, "nginx")
        yield url
    finally:
        process.stop()


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the peer closes the connection (fails after `limit`)."""
    started = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def test_a_client_that_never_finishes_its_headers_is_cut_off(proxy: str) -> None:
    port = int(proxy.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port)) as idle,
        socket.create_connection(("127.0.0.1", port)) as slow,
    ):
        slow.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        for sock in (idle, slow):
            elapsed = _closed_after(sock, HEADER_TIMEOUT + 10)
            assert elapsed < HEADER_TIMEOUT + 10


def test_events_and_answers_pass_through_unbuffered(fake_stack: Stack, proxy: str) -> None:
    with httpx.Client(base_url=proxy, timeout=30) as http:
        job = http.post("/v1/jobs", json={"question": "slow:20"}).json()
        arrivals: list[float] = []
        with connect_sse(http, "GET", f"/v1/jobs/{job['id']}/events") as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            names = []
            for sse in source.iter_sse():
                names.append(sse.event)
                arrivals.append(time.monotonic())
        assert names[-1] == "done"
        # Streamed as made (1 s of tokens), not buffered into one piece at the end.
        assert arrivals[-1] - arrivals[0] > 0.5
        assert fake_stack.job(job["id"])["answer"].split()[-1] == "s19"


def test_an_oversized_upload_gets_the_gateways_413(proxy: str) -> None:
    big = b"\0" * (51 * 1024 * 1024)
    response = httpx.post(
        f"{proxy}/v1/jobs",
        content=big,
        headers={"content-type": "multipart/form-data; boundary=x"},
        timeout=60,
    )
    assert response.status_code == 413
    assert response.json()["code"] == "upload-too-large"
