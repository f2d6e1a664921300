"""API keys and tenants: each tenant sees only its own jobs, events, audio and uploads.

A gateway with keys for several tenants, against the real Redis and a real worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from api.auth import hash_api_key
from testbed.paths import REPO_ROOT
from testbed.processes import RedisServer
from tests.conftest import start_stack
from tests.support.stack import Stack

TENANTS = ("alice", "bob", "carol", "dave", "acme.eu", "a.b.c")
KEYS = {tenant: f"ac_test_key_of_{tenant}" for tenant in TENANTS}


@pytest.fixture(scope="module")
def keyed(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'keyed-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_API_KEYS": json.dumps({hash_api_key(k): t for t, k in KEYS.items()}),
        "AUDIOCHAT_TOKEN_SECRET": "a-test-secret",
        "AUDIOCHAT_CORS_ORIGINS": json.dumps(["https://app.example"]),
        "AUDIOCHAT_RATE_LIMIT_PER_MINUTE": "40",
        "AUDIOCHAT_MAX_ACTIVE_JOBS_PER_TENANT": "3",
    }
    running = start_stack(
        workdir / "keyed-stack",
        redis_server.url(3),
        env,
        {"worker-keyed": {"AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:ScriptedBackend"}},
    )
    yield running
    running.close()


def client(stack: Stack, tenant: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {KEYS[tenant]}"} if tenant else {}
    return httpx.Client(base_url=stack.url, headers=headers, timeout=30)


def _events(http: httpx.Client, url: str) -> list[str]:
    with connect_sse(http, "GET", url) as source:
        if source.response.status_code != 200:
            return [f"HTTP {source.response.status_code}"]
        return [sse.event for sse in source.iter_sse() if sse.event != "message"]


@pytest.fixture(scope="module")
def alice_job(keyed: Stack, shared_audio: Path) -> dict[str, Any]:
    with client(keyed, "alice") as alice, (shared_audio / "1272-128104-0000.flac").open("rb") as f:
        response = alice.post("/v1/jobs", files={"audio": ("mine.flac", f)})
        assert response.status_code == 202, response.text
        job: dict[str, Any] = response.json()
        assert _events(alice, f"/v1/jobs/{job['id']}/events")[-1] == "done"
    return job


def test_requests_without_a_valid_key_are_401(keyed: Stack) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": KEYS["alice"]}):
        response = httpx.get(f"{keyed.url}/v1/jobs", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    # Probes and the API description stay open.
    assert httpx.get(f"{keyed.url}/healthz").status_code == 200
    assert httpx.get(f"{keyed.url}/openapi.json").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/jobs/{id}"),
        ("GET", "/v1/jobs/{id}/events"),
        ("GET", "/v1/jobs/{id}/audio"),
        ("POST", "/v1/jobs/{id}/cancel"),
    ],
)
def test_another_tenant_gets_404_for_every_job_endpoint(
    keyed: Stack, alice_job: dict[str, Any], method: str, path: str
) -> None:
    url = path.format(id=alice_job["id"])
    with client(keyed, "bob") as bob, client(keyed, "alice") as alice:
        response = bob.request(method, url)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "job-not-found"
        if method == "GET":
            assert alice.request(method, url).status_code == 200


def test_listing_shows_only_your_own_jobs(keyed: Stack, alice_job: dict[str, Any]) -> None:
    with client(keyed, "alice") as alice, client(keyed, "bob") as bob:
        bob_job = bob.post("/v1/jobs", json={"question": "bob's"}).json()
        alice_ids = [j["id"] for j in alice.get("/v1/jobs").json()]
        bob_ids = [j["id"] for j in bob.get("/v1/jobs").json()]
    assert alice_job["id"] in alice_ids and bob_job["id"] not in alice_ids
    assert bob_job["id"] in bob_ids and alice_job["id"] not in bob_ids


def test_job_audio_is_returned_to_its_tenant(
    keyed: Stack, alice_job: dict[str, Any], shared_audio: Path
) -> None:
    with client(keyed, "alice") as alice:
        response = alice.get(f"/v1/jobs/{alice_job['id']}/audio")
    assert response.status_code == 200
    assert response.content == (shared_audio / "1272-128104-0000.flac").read_bytes()
    assert "mine.flac" in response.headers["content-disposition"]


def test_uploads_are_visible_to_their_tenant_only(keyed: Stack, shared_audio: Path) -> None:
    with (
        client(keyed, "alice") as alice,
        client(keyed, "bob") as bob,
        (shared_audio / "1272-128104-0000.flac").open("rb") as f,
    ):
        upload = alice.post("/v1/uploads", files={"file": ("u.flac", f)})
        assert upload.status_code == 201, upload.text
        upload_id = upload.json()["id"]
        assert alice.get(f"/v1/uploads/{upload_id}").status_code == 200
        assert bob.get(f"/v1/uploads/{upload_id}").status_code == 404
        # Bob cannot use Alice's upload in a job either.
        response = bob.post("/v1/jobs", json={"question": "q", "upload_ids": [upload_id]})
        assert response.status_code == 404, response.text
        mine = alice.post("/v1/jobs", json={"question": "q", "upload_ids": [upload_id]})
        assert mine.status_code == 202, mine.text


def test_events_open_with_the_job_token_and_only_for_that_job(
    keyed: Stack, alice_job: dict[str, Any]
) -> None:
    with client(keyed, "alice") as alice:
        other = alice.post("/v1/jobs", json={"question": "another"}).json()
        link = alice.get(f"/v1/jobs/{alice_job['id']}").json()["links"]["events"]
    assert "token=" in link and KEYS["alice"] not in link
    with client(keyed, None) as anonymous:
        assert _events(anonymous, link)[-1] == "done"
        token = link.split("token=", 1)[1]
        # The token opens this job's events, not another job's, and nothing else.
        assert _events(anonymous, f"/v1/jobs/{other['id']}/events?token={token}") == ["HTTP 401"]
        assert anonymous.get(f"/v1/jobs/{alice_job['id']}?token={token}").status_code == 401
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        url = f"/v1/jobs/{alice_job['id']}/events?token={tampered}"
        assert _events(anonymous, url) == ["HTTP 401"]


def test_event_tokens_work_for_tenants_with_dots_in_their_names(keyed: Stack) -> None:
    for tenant in ("acme.eu", "a.b.c"):
        with client(keyed, tenant) as owner:
            job = owner.post("/v1/jobs", json={"question": "dotted"}).json()
        with client(keyed, None) as anonymous:
            assert _events(anonymous, job["links"]["events"])[-1] == "done", tenant
        # The token names its tenant: it still opens nothing of another tenant's.
        token = job["links"]["events"].split("token=", 1)[1]
        with client(keyed, "alice") as alice:
            mine = alice.post("/v1/jobs", json={"question": "mine"}).json()
        with client(keyed, None) as anonymous:
            assert _events(anonymous, f"/v1/jobs/{mine['id']}/events?token={token}") == ["HTTP 401"]


def test_cors_allows_only_the_listed_origins(keyed: Stack) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = httpx.options(
        f"{keyed.url}/v1/jobs", headers={"Origin": "https://app.example", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers.get("access-control-allow-credentials") == "true"
    denied = httpx.options(
        f"{keyed.url}/v1/jobs", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in denied.headers


def test_rate_limit_is_per_key_with_retry_after(keyed: Stack) -> None:
    with client(keyed, "carol") as carol, client(keyed, "bob") as bob:
        codes = [carol.post("/v1/jobs", json={}).status_code for _ in range(41)]
        assert codes[:40] == [422] * 40
        assert codes[40] == 429
        limited = carol.post("/v1/jobs", json={})
        assert limited.json()["code"] == "rate-limited"
        assert 0 < int(limited.headers["retry-after"]) <= 60
        # Another key is not affected.
        assert bob.post("/v1/jobs", json={}).status_code == 422


def test_active_jobs_are_capped_per_key(keyed: Stack) -> None:
    with client(keyed, "dave") as dave:
        jobs = [dave.post("/v1/jobs", json={"question": "slow:100"}) for _ in range(3)]
        assert [r.status_code for r in jobs] == [202] * 3
        refused = dave.post("/v1/jobs", json={"question": "one more"})
        assert refused.status_code == 429
        assert refused.json()["code"] == "too-many-active-jobs"
        assert "retry-after" in refused.headers
        for job in jobs:
            assert dave.post(f"/v1/jobs/{job.json()['id']}/cancel").status_code == 200
        # Ended jobs no longer count.
        assert dave.post("/v1/jobs", json={"question": "now"}).status_code == 202


def test_gateway_refuses_to_listen_beyond_loopback_without_keys(tmp_path: Path) -> None:
    # The check runs before anything binds, so nothing ever listens on 0.0.0.0 here.
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--host", "0.0.0.0", "--port", "9"],
        cwd=REPO_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(REPO_ROOT),
            "AUDIOCHAT_STORAGE_URL": f"file://{tmp_path}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "AUDIOCHAT_API_KEYS" in result.stderr


def test_cli_makes_a_key_the_gateway_accepts(tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "cli.main", "keys", "new", "--tenant", "erin"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key = made.split("key (give it to the client; it is not stored anywhere): ", 1)[1].split()[0]
    entry = made.split("add to AUDIOCHAT_API_KEYS: ", 1)[1].strip()
    assert json.loads("{" + entry + "}") == {hash_api_key(key): "erin"}
    assert key not in entry
