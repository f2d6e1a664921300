"""Messages on the events channel that are not events, or are a newer version's, published on
the stack's real Redis: every gateway keeps relaying live events."""

from __future__ import annotations

import json

import httpx

from shared.redis_keys import EVENTS_CHANNEL
from testbed.processes import wait_for
from tests.faults.conftest import FaultStack

BAD_MESSAGES: list[bytes | str] = [
    b"not json",
    b"\xff\xfe",
    "[]",
    '{"job_id": "0123", "id": 1}',
    "[" * 50_000 + "]" * 50_000,
    # A newer worker's event, in a rolling upgrade.
    json.dumps({"job_id": "0" * 32, "id": 1, "event": "answer.reasoning", "data": {}}),
]


def test_bad_messages_on_the_channel_do_not_stop_live_events(faults: FaultStack) -> None:
    stack = faults.stack
    r = faults.redis_server.client()
    for message in BAD_MESSAGES:
        assert r.publish(EVENTS_CHANNEL, message) >= 1  # the gateway is subscribed
    # Streams still end with `done`, chat still gets its answer, and the gateway says ready.
    job = stack.submit_text("slow:10")
    events = stack.events(job["id"], timeout=30)
    assert events[-1].event == "done" and events[-1].data == {"status": "succeeded"}
    chat = stack.http.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": "still there?"}]},
        timeout=httpx.Timeout(30),
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"] == "echo: still there?"
    assert stack.http.get("/readyz").status_code == 200
    # The operator is told, without a traceback per message.
    log = stack.gateway.process.log_path
    wait_for(lambda: "ignored" in log.read_text(), 10, "the gateway to log the bad messages")
    assert "Traceback" not in log.read_text()
