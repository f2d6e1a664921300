"""Clients that misbehave: vanish mid-upload, vanish by the hundred from SSE, send too much."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from shared.redis_keys import JOB_INDEX_KEY
from testbed.processes import wait_for
from tests.faults.conftest import FAULT_SETTINGS, FaultStack


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _redis_clients(faults: FaultStack) -> int:
    return len(faults.redis_server.client().client_list())


def test_client_that_disconnects_halfway_through_an_upload_leaves_nothing(
    faults: FaultStack, shared_audio: Path
) -> None:
    stack = faults.stack
    r = stack.redis()
    jobs_before = r.zcard(JOB_INDEX_KEY)
    audio = (shared_audio / "1089_134686_000007_000004.wav").read_bytes()
    boundary = "audiochatboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", stack.gateway.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.2)  # let the gateway start reading before the client goes
    # The gateway is still serving, and no job came of the half upload.
    assert stack.http.get("/healthz").status_code == 200
    assert stack.submit_text("after the disconnect")["status"] == "queued"
    assert r.zcard(JOB_INDEX_KEY) == jobs_before + 1


def test_upload_over_the_limit_is_refused_before_it_is_all_sent(faults: FaultStack) -> None:
    """Chunked, with no Content-Length: the limit holds on the bytes as they arrive."""
    chunk = b"\0" * (256 * 1024)
    total_chunks = 800  # 200 MB, four times the default 50 MB limit
    part = b'--x\r\nContent-Disposition: form-data; name="audio"; filename="big.wav"\r\n\r\n'
    head = (
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n\r\n"
    )
    sent = 0
    reply = b""
    with socket.create_connection(("127.0.0.1", faults.stack.gateway.port)) as sock:
        sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
        sock.setblocking(False)
        try:
            for _ in range(total_chunks):
                with contextlib.suppress(BlockingIOError):
                    reply += sock.recv(65536)
                if reply:
                    break
                sock.setblocking(True)
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sock.setblocking(False)
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass  # the gateway answered and closed while we were still sending
        sock.setblocking(True)
        sock.settimeout(10)
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"upload-too-large" in reply or b"content-length" in reply.lower()
    assert sent < total_chunks


def test_two_hundred_sse_clients_that_vanish_leave_no_connections_behind(
    faults: FaultStack,
) -> None:
    stack = faults.stack
    gateway_pid = stack.gateway.process.pid
    job = stack.submit_text("slow:140")  # 7 s, under the stack's 8 s soft limit
    wait_for(lambda: stack.job(job["id"])["status"] == "answering", 30, "the job to run")
    # Warm the gateway's pools first, so the baseline includes them.
    stack.events(job["id"], limit=3)
    fds_before = _open_fds(gateway_pid)
    redis_before = _redis_clients(faults)
    sockets = []
    request = (
        f"GET /v1/jobs/{job['id']}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", stack.gateway.port))
        sock.sendall(request)
        sockets.append(sock)
    for sock in sockets:
        sock.settimeout(10)
        assert b"200 OK" in sock.recv(4096)
    assert _open_fds(gateway_pid) >= fds_before + 200
    for sock in sockets:
        # RST instead of FIN: the client is gone, not politely closing.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    # What may stay: connections the gateway's bounded Redis pools opened while 200 clients
    # replayed at once (at most AUDIOCHAT_REDIS_MAX_CONNECTIONS = 8 per pool), not 200.
    pool = int(FAULT_SETTINGS["AUDIOCHAT_REDIS_MAX_CONNECTIONS"])
    wait_for(lambda: _open_fds(gateway_pid) <= fds_before + pool, 30, "file descriptors to return")
    assert _redis_clients(faults) <= redis_before + pool
    # ...and that happened while the job was still streaming, not because it ended.
    assert stack.job(job["id"])["status"] == "answering"
    assert faults.final(job["id"])["status"] == "succeeded"
