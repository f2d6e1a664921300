"""Per-tenant storage quotas on a real gateway: history-heavy jobs and uploads stop at the
tenant's quota with a clear problem, and nothing of a refused request is kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.auth import hash_api_key
from shared.redis_keys import JOB_INDEX_KEY
from testbed.processes import Gateway
from tests.support.stack import Stack

KEYS = {"quota-a": "ac_quota_key_a", "quota-b": "ac_quota_key_b"}
RECORD_QUOTA = 240_000  # three jobs with 32 kB of history and 32 kB allowance each, not four
AUDIO_QUOTA = 300_000  # two 120 kB recordings
HISTORY = [{"question": "q" * 8000, "answer": "a" * 24000}]


@pytest.fixture(scope="module")
def quota_gateway(fake_stack: Stack) -> Iterator[Gateway]:
    env = {
        **fake_stack.env,
        "AUDIOCHAT_API_KEYS": json.dumps({hash_api_key(k): t for t, k in KEYS.items()}),
        "AUDIOCHAT_MAX_RECORD_BYTES_PER_TENANT": str(RECORD_QUOTA),
        "AUDIOCHAT_MAX_AUDIO_BYTES_PER_TENANT": str(AUDIO_QUOTA),
        "AUDIOCHAT_RATE_LIMIT_PER_MINUTE": "0",
    }
    gateway = Gateway(env, fake_stack.workdir, name="gateway-quota")
    gateway.start()
    yield gateway
    gateway.stop()


def _client(gateway: Gateway, tenant: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {KEYS[tenant]}"}
    return httpx.Client(base_url=gateway.url, headers=headers, timeout=30)


def test_history_heavy_jobs_stop_at_the_record_quota(
    fake_stack: Stack, quota_gateway: Gateway
) -> None:
    r = fake_stack.redis()
    body = {"question": "again", "history": HISTORY}
    with _client(quota_gateway, "quota-a") as a, _client(quota_gateway, "quota-b") as b:
        codes = [a.post("/v1/jobs", json=body).status_code for _ in range(3)]
        assert codes == [202, 202, 202]
        jobs_before = r.zcard(JOB_INDEX_KEY)
        refused = a.post("/v1/jobs", json=body)
        assert refused.status_code == 429, refused.text[:300]
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["code"] == "storage-quota-exceeded"
        assert "records" in problem["detail"] and "quota" in problem["detail"]
        assert int(refused.headers["retry-after"]) > 0
        # Nothing of the refused job was written, and the other tenant is not affected.
        assert r.zcard(JOB_INDEX_KEY) == jobs_before
        assert b.post("/v1/jobs", json=body).status_code == 202
        # A small job still fits in what is left.
        assert a.post("/v1/jobs", json={"question": "short"}).status_code == 202


def test_uploads_stop_at_the_audio_quota_in_openais_error_body(
    fake_stack: Stack, quota_gateway: Gateway, shared_audio: Path
) -> None:
    audio = (shared_audio / "1272-128104-0000.flac").read_bytes()
    objects = Path(fake_stack.env["AUDIOCHAT_STORAGE_URL"].removeprefix("file://"))

    def stored() -> int:
        return len(list((objects / "uploads").glob("*/audio")))

    with _client(quota_gateway, "quota-b") as b:
        for _ in range(2):
            assert b.post("/v1/uploads", files={"file": ("q.flac", audio)}).status_code == 201
        before = stored()
        refused = b.post("/v1/uploads", files={"file": ("q.flac", audio)})
        assert refused.status_code == 429, refused.text[:300]
        error = refused.json()["error"]
        assert error["code"] == "storage-quota-exceeded" and error["type"] == "rate_limit_error"
        assert stored() == before
        # A job with audio is refused the same way, before anything is stored.
        job = b.post("/v1/jobs", files={"audio": ("q.flac", audio)})
        assert job.status_code == 429 and job.json()["code"] == "storage-quota-exceeded"
        assert stored() == before
