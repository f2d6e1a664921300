"""How large and how slow a request may be, on a gateway with a small upload limit and short
body timeouts: what is refused, in which error body, and that refusals are counted."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testbed.processes import Gateway, wait_for
from tests.support.stack import Stack

WAV = "1089_134686_000007_000004.wav"  # 432 kB: its base64 is 576 kB
MAX_UPLOAD = 450_000
IDLE, TOTAL = 1.0, 3.0


@pytest.fixture(scope="module")
def strict(fake_stack: Stack) -> Iterator[Gateway]:
    env = {
        **fake_stack.env,
        "AUDIOCHAT_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "AUDIOCHAT_REQUEST_BODY_IDLE_SECONDS": str(IDLE),
        "AUDIOCHAT_REQUEST_BODY_SECONDS": str(TOTAL),
        "AUDIOCHAT_CORS_ORIGINS": json.dumps(["https://app.example"]),
    }
    gateway = Gateway(env, fake_stack.workdir, name="gateway-strict")
    gateway.start()
    yield gateway
    gateway.stop()


def _requests_counted(gateway: Gateway, route: str, status: str) -> float:
    text = httpx.get(f"{gateway.url}/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "audiochat_http_requests":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_total")
                and s.labels.get("route") == route
                and s.labels.get("status") == status
            )
    return 0.0


def test_chat_takes_input_audio_up_to_the_upload_limit(strict: Gateway, shared_audio: Path) -> None:
    data = base64.b64encode((shared_audio / WAV).read_bytes()).decode()
    assert len(data) > MAX_UPLOAD + 64 * 1024  # larger than any other request may be
    body = {
        "model": "echo",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}
                ],
            }
        ],
    }
    response = httpx.post(f"{strict.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text[:500]
    assert response.json()["transcript"] == "heard 9.0 seconds"


def test_too_large_is_413_in_the_error_body_of_the_path(strict: Gateway) -> None:
    big = b"x" * (MAX_UPLOAD * 2)
    before = _requests_counted(strict, "unmatched", "413")
    for path, openai in (
        ("/v1/chat/completions", True),
        ("/v1/uploads", True),
        ("/v1/audio/transcriptions", True),
        ("/v1/jobs", False),
    ):
        response = httpx.post(
            f"{strict.url}{path}", content=big, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413, path
        if openai:
            assert response.json()["error"]["code"] == "upload-too-large", path
        else:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "upload-too-large"
    # Refused before routing, and counted all the same.
    assert _requests_counted(strict, "unmatched", "413") == before + 4


def test_a_preflight_cors_refuses_is_counted(strict: Gateway) -> None:
    before = _requests_counted(strict, "unmatched", "400")
    denied = httpx.options(
        f"{strict.url}/v1/jobs",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert denied.status_code == 400
    assert _requests_counted(strict, "unmatched", "400") == before + 1


def _upload_head(gateway: Gateway, length: int) -> bytes:
    return (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n\r\n"
        '--x\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
    ).encode()


def _reply(sock: socket.socket, wait: float) -> bytes:
    sock.settimeout(wait)
    reply = b""
    try:
        while chunk := sock.recv(65536):
            reply += chunk
    except TimeoutError:
        pass
    return reply


def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(strict: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(_upload_head(strict, 100_000) + b"\0" * 1000)
        started = time.monotonic()
        reply = _reply(sock, 10)  # ends when the gateway closes the connection
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"request-timeout" in reply
    assert elapsed < 10


def test_a_body_that_drips_in_gets_408_at_the_total_limit(strict: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(_upload_head(strict, 100_000))
        sock.setblocking(False)
        reply = b""
        deadline = time.monotonic() + 15
        # One byte every 0.3 s: never idle for 1 s, never done either.
        while not reply and time.monotonic() < deadline:
            try:
                sock.send(b"\0")
                reply = sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.3)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        reply += _reply(sock, 5)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/chat/completions"])
def test_a_client_that_disconnects_mid_upload_costs_one_log_line(
    strict: Gateway, shared_audio: Path, path: str
) -> None:
    log = strict.process.log_path
    before = log.read_text().splitlines()
    audio = (shared_audio / WAV).read_bytes()
    head = _upload_head(strict, len(audio) + 200)
    if path != "/v1/jobs":
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(audio) + 200}\r\n"
            'Content-Type: application/json\r\n\r\n{"model": "echo", "messages": [{"role": "'
        ).encode()
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(head + audio[: len(audio) // 2])
        time.sleep(0.2)  # let the gateway start reading before the client goes
    wait_for(lambda: len(log.read_text().splitlines()) > len(before), 10, "a log line")
    assert httpx.get(f"{strict.url}/healthz").status_code == 200
    added = log.read_text().splitlines()[len(before) :]
    assert "disconnected before its body arrived" in added[0], added
    assert not any("Traceback" in line for line in added), added
    assert len(added) <= 3, added
