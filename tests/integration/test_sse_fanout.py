"""Many SSE clients share one Redis subscription per gateway process."""

from __future__ import annotations

import threading

import httpx
from httpx_sse import connect_sse

from testbed.processes import Gateway
from tests.support.stack import Stack


def _redis_clients(stack: Stack) -> int:
    """Connections to the stack's own database (other stacks share the server)."""
    db = stack.redis_url.rsplit("/", 1)[1]
    return sum(1 for client in stack.redis().client_list() if client["db"] == db)


def test_clients_following_live_jobs_do_not_add_redis_connections(fake_stack: Stack) -> None:
    job = fake_stack.submit_text("slow:60")
    baseline = _redis_clients(fake_stack)
    received: list[list[str]] = []
    connected = threading.Barrier(26)

    def follow() -> None:
        names: list[str] = []
        with (
            httpx.Client(base_url=fake_stack.url, timeout=60) as http,
            connect_sse(http, "GET", f"/v1/jobs/{job['id']}/events") as source,
        ):
            for sse in source.iter_sse():
                if len(names) == 0:
                    connected.wait(timeout=30)
                names.append(sse.event)
        received.append(names)

    threads = [threading.Thread(target=follow) for _ in range(25)]
    for thread in threads:
        thread.start()
    connected.wait(timeout=30)
    during = _redis_clients(fake_stack)
    for thread in threads:
        thread.join(timeout=60)
    assert len(received) == 25
    assert all(names[-1] == "done" and names.count("answer.completed") == 1 for names in received)
    # 25 clients on one gateway share its single subscription and its two pools (sync and
    # async, 4 connections each in this stack): Redis does not see one connection per client.
    assert during - baseline <= 2 * 4


def test_a_quiet_stream_gets_keep_alive_comments_and_still_ends(fake_stack: Stack) -> None:
    # A second gateway on the same Redis and store, pinging every 0.3 s instead of every 15.
    env = {**fake_stack.env, "AUDIOCHAT_SSE_KEEPALIVE_SECONDS": "0.3"}
    gateway = Gateway(env, fake_stack.workdir, name="gateway-keepalive")
    gateway.start()
    try:
        job = fake_stack.submit_text("hang:2")  # one delta, then 2 s of silence
        lines: list[str] = []
        with httpx.stream("GET", f"{gateway.url}/v1/jobs/{job['id']}/events", timeout=30) as r:
            assert r.status_code == 200
            lines.extend(r.iter_lines())
    finally:
        gateway.stop()
    comments = [line for line in lines if line.startswith(":")]
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    # 2 s of silence at one comment per 0.3 s: several, not one stray.
    assert len(comments) >= 3, lines
    assert events[-1] == "done" and "answer.completed" in events, events
