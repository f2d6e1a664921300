"""Webhooks end to end: a gateway with API keys, a worker, a webhook worker, and a real receiver
on loopback. Signatures are checked with the Standard Webhooks library, not audiochat's code."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api.auth import hash_api_key
from testbed.paths import REPO_ROOT
from testbed.processes import RedisServer, WebhookWorker, wait_for
from tests.conftest import start_stack
from tests.support.receivers import Received, Receiver
from tests.support.stack import Stack

KEYS = {tenant: f"ac_webhook_key_of_{tenant}" for tenant in ("alice", "bob")}
# Fast retries, so giving up takes seconds: 1 s per attempt, retried for 6 s.
RETRY_FOR_SECONDS = 6


@pytest.fixture(scope="module")
def hooks(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'webhook-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_API_KEYS": json.dumps({hash_api_key(k): t for t, k in KEYS.items()}),
        "AUDIOCHAT_RATE_LIMIT_PER_MINUTE": "0",
        "AUDIOCHAT_WEBHOOKS__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "AUDIOCHAT_WEBHOOKS__TIMEOUT_SECONDS": "1",
        "AUDIOCHAT_WEBHOOKS__BACKOFF_SECONDS": "0.2",
        "AUDIOCHAT_WEBHOOKS__MAX_BACKOFF_SECONDS": "0.5",
        "AUDIOCHAT_WEBHOOKS__RETRY_FOR_SECONDS": str(RETRY_FOR_SECONDS),
    }
    running = start_stack(
        workdir / "webhook-stack",
        redis_server.url(10),
        env,
        {"worker-hooks": {"AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:ScriptedBackend"}},
    )
    webhook_worker = WebhookWorker(running.env, running.workdir)
    try:
        webhook_worker.start()
    except BaseException:
        running.close()
        raise
    yield running
    webhook_worker.stop()
    running.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alice(hooks: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=hooks.url, headers={"Authorization": f"Bearer {KEYS['alice']}"}, timeout=30
    ) as http:
        yield http


@pytest.fixture(scope="module")
def secret(alice: httpx.Client) -> str:
    response = alice.post("/v1/webhooks/secret")
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    value: str = response.json()["secret"]
    return value


def _path(kind: str) -> str:
    return f"/{kind}/{uuid.uuid4().hex}"


def _submit(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/v1/jobs", json={"model": "echo", **body})
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def _delivery_ends(http: httpx.Client, job_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The job's deliveries, once `count` of them have been delivered or given up."""
    found: list[dict[str, Any]] = []

    def ended() -> bool:
        found[:] = http.get(f"/v1/jobs/{job_id}").json()["webhook"]["deliveries"]
        return sum(d["status"] in ("delivered", "failed") for d in found) >= count

    wait_for(ended, 30, f"{count} deliveries of job {job_id} to end", interval=0.1)
    return found


def _verified(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def test_a_failing_receiver_gets_the_same_signed_delivery_until_it_accepts(
    alice: httpx.Client, secret: str, receiver: Receiver
) -> None:
    path = _path("flaky-2")
    job = _submit(alice, {"question": "tokens:3", "webhook": receiver.url(path)})
    assert job["webhook"] == {"url": receiver.url(path), "events": ["done"], "deliveries": []}
    requests = receiver.wait_for(path, 3)
    payloads = [_verified(secret, request) for request in requests]
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert len({request.body for request in requests}) == 1
    assert payloads[0]["type"] == "done"
    done = payloads[0]["data"]
    assert done["status"] == "succeeded" and done["job"]["answer"] == "t0 t1 t2"
    (delivery,) = _delivery_ends(alice, job["id"])
    assert delivery["id"] == requests[0].headers["webhook-id"]
    assert delivery["status"] == "delivered" and delivery["next_attempt_at"] is None
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 204]
    assert [a["error"] for a in delivery["attempts"]] == ["answered 500", "answered 500", None]


def test_another_key_cannot_verify_and_a_tampered_body_fails(
    alice: httpx.Client, secret: str, receiver: Receiver
) -> None:
    path = _path("ok")
    _submit(alice, {"question": "hi", "webhook": receiver.url(path)})
    (request,) = receiver.wait_for(path)
    _verified(secret, request)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(request.body.replace(b"succeeded", b"failed!!!"), request.headers)


def test_410_gone_is_given_up_after_one_attempt(alice: httpx.Client, receiver: Receiver) -> None:
    path = _path("gone")
    job = _submit(alice, {"question": "hi", "webhook": receiver.url(path)})
    (delivery,) = _delivery_ends(alice, job["id"])
    assert delivery["status"] == "failed"
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [(410, "answered 410")]
    assert len(receiver.received(path)) == 1


def test_a_hanging_receiver_is_retried_for_a_bounded_time_without_holding_the_model_worker(
    hooks: Stack, alice: httpx.Client, receiver: Receiver
) -> None:
    path = _path("hang")
    job = _submit(alice, {"question": "hi", "webhook": receiver.url(path)})
    receiver.wait_for(path)
    # While the receiver holds the delivery, the model worker serves the next job.
    other = _submit(alice, {"question": "tokens:2"})
    wait_for(
        lambda: alice.get(f"/v1/jobs/{other['id']}").json()["status"] == "succeeded", 10, "job"
    )
    served = datetime.fromisoformat(alice.get(f"/v1/jobs/{other['id']}").json()["finished_at"])
    (delivery,) = _delivery_ends(alice, job["id"])
    assert delivery["status"] == "failed" and len(delivery["attempts"]) >= 2
    assert {a["error"] for a in delivery["attempts"]} == {"no answer within 1 s"}
    first, last = delivery["attempts"][0], delivery["attempts"][-1]
    assert last["at"] > first["at"]
    assert served < datetime.fromisoformat(delivery["finished_at"])
    assert len(receiver.received(path)) == len(delivery["attempts"])


def test_transcript_and_done_are_delivered_for_a_spoken_question(
    alice: httpx.Client, secret: str, receiver: Receiver, shared_audio: Path
) -> None:
    path = _path("ok")
    flac = shared_audio / "1272-128104-0000.flac"
    with flac.open("rb") as handle:
        response = alice.post(
            "/v1/jobs",
            data={
                "model": "echo",
                "webhook": receiver.url(path),
                "webhook_events_filter": ["transcript.completed", "done"],
            },
            files={"audio": (flac.name, handle)},
        )
    assert response.status_code == 202, response.text
    job = response.json()
    requests = receiver.wait_for(path, 2)
    # Two deliveries may arrive in either order (they are attempted in parallel).
    payloads = {p["type"]: p for p in (_verified(secret, request) for request in requests)}
    assert set(payloads) == {"transcript.completed", "done"}
    assert payloads["transcript.completed"]["data"] == {
        "job_id": job["id"],
        "text": "heard 5.9 seconds",
        "language": "en",
    }
    assert payloads["done"]["data"]["job"]["transcript"] == "heard 5.9 seconds"
    deliveries = _delivery_ends(alice, job["id"], 2)
    # The job lists them in the order of their events.
    assert [d["event"] for d in deliveries] == ["transcript.completed", "done"]
    assert {d["status"] for d in deliveries} == {"delivered"}


@pytest.mark.parametrize(("question", "status"), [("fail:1", "failed"), ("slow:200", "canceled")])
def test_jobs_that_fail_or_are_canceled_are_delivered_too(
    alice: httpx.Client, secret: str, receiver: Receiver, question: str, status: str
) -> None:
    path = _path("ok")
    job = _submit(alice, {"question": question, "webhook": receiver.url(path)})
    if status == "canceled":
        assert alice.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    (request,) = receiver.wait_for(path)
    data = _verified(secret, request)["data"]
    assert data["status"] == status and data["job"]["status"] == status
    if status == "failed":
        assert data["job"]["error"]["code"] == "model-error"


def test_a_tenant_without_a_secret_is_told_to_make_one(hooks: Stack, receiver: Receiver) -> None:
    with httpx.Client(
        base_url=hooks.url, headers={"Authorization": f"Bearer {KEYS['bob']}"}, timeout=30
    ) as bob:
        assert bob.get("/v1/webhooks/secret").json()["code"] == "webhook-secret-missing"
        before = bob.get("/v1/jobs").json()
        response = bob.post("/v1/jobs", json={"question": "hi", "webhook": receiver.url("/ok/b")})
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "webhook-secret-missing"
        assert bob.get("/v1/jobs").json() == before


def test_rotation_shows_the_new_secret_once_and_signs_with_both_for_a_while(
    hooks: Stack, receiver: Receiver
) -> None:
    with httpx.Client(
        base_url=hooks.url, headers={"Authorization": f"Bearer {KEYS['bob']}"}, timeout=30
    ) as bob:
        old = bob.post("/v1/webhooks/secret").json()
        assert old["secret"].startswith("whsec_") and old["previous_expires_at"] is None
        new = bob.post("/v1/webhooks/secret").json()
        assert new["secret"] != old["secret"] and new["previous_expires_at"] > new["created_at"]
        shown = bob.get("/v1/webhooks/secret").json()
        assert shown["secret"] is None and shown["created_at"] == new["created_at"]
        path = _path("ok")
        _submit(bob, {"question": "hi", "webhook": receiver.url(path)})
        (request,) = receiver.wait_for(path)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for value in (old["secret"], new["secret"]):
        assert _verified(value, request)["type"] == "done"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"webhook": "http://127.0.0.1:9/x"}, 422, "webhook-url-refused"),
        ({"webhook": "http://localhost/x"}, 422, "webhook-url-refused"),
        ({"webhook": "http://[::1]/x"}, 422, "webhook-url-refused"),
        ({"webhook": "http://169.254.169.254/latest/meta-data/"}, 422, "webhook-url-refused"),
        ({"webhook": "http://10.0.0.1/x"}, 422, "webhook-url-refused"),
        ({"webhook": "ftp://example.com/x"}, 422, "invalid-request"),
        ({"webhook": "http://user:secret@example.com/x"}, 422, "invalid-request"),
        ({"webhook_events_filter": ["done"]}, 422, "invalid-request"),
        ({"webhook": "http://10.0.0.1/x", "webhook_events_filter": ["answer.delta"]}, 422, None),
        ({"webhook": "http://10.0.0.1/x", "webhook_events_filter": []}, 422, None),
    ],
)
def test_hostile_or_bad_webhooks_are_refused_and_make_no_job(
    local_stack: Stack, body: dict[str, Any], status: int, code: str | None
) -> None:
    # This stack has the default settings: no network is allowed beyond public addresses.
    assert local_stack.http.post("/v1/webhooks/secret").status_code == 201
    before = local_stack.redis().zcard("audiochat:jobs")
    response = local_stack.http.post("/v1/jobs", json={"question": "hi", "model": "echo", **body})
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == (code or "invalid-request")
    assert local_stack.redis().zcard("audiochat:jobs") == before


def test_the_receiver_in_the_docs_verifies_a_real_delivery(
    alice: httpx.Client, secret: str, receiver: Receiver
) -> None:
    docs = (REPO_ROOT / "docs" / "api.md").read_text()
    (example,) = re.findall(r"```python\n(from fastapi.*?)```", docs, re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(example.replace('"whsec_…"', repr(secret)), namespace)
    path = _path("ok")
    _submit(alice, {"question": "hi", "webhook": receiver.url(path)})
    (request,) = receiver.wait_for(path)
    transport = httpx.ASGITransport(app=namespace["app"])

    async def post(body: bytes) -> int:
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
            response = await client.post("/hooks/audiochat", content=body, headers=request.headers)
            return response.status_code

    assert asyncio.run(post(request.body)) == 204
    assert asyncio.run(post(request.body.replace(b'"done"', b'"DONE"'))) == 400
