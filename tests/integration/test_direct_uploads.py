"""Presigned uploads: the client sends the file to the S3 server itself (moto, over plain HTTP),
and the gateway checks the stored object when a job names it, with the codes of a direct upload.

moto does not enforce a POST policy's `content-length-range` (S3 and MinIO do), so an
over-limit file really reaches the store here: the gateway's own check is what refuses it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pytest

from testbed.processes import S3_ENV, Gateway, RedisServer, S3Server
from tests.conftest import start_stack
from tests.integration.test_cli import audiochat
from tests.support.audio_files import write_wav
from tests.support.stack import Stack

BUCKET = "audiochat-direct"
MAX_BYTES = 1024 * 1024
MAX_SECONDS = 10


@pytest.fixture(scope="module")
def s3_stack(workdir: Path, redis_server: RedisServer, s3_server: S3Server) -> Iterator[Stack]:
    """A gateway on the S3 store with an echo worker, 1 MiB and 10 s limits."""
    env = {
        "AUDIOCHAT_STORAGE_URL": f"s3://{BUCKET}",
        "AUDIOCHAT_S3__ENDPOINT_URL": s3_server.endpoint_url,
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_MAX_UPLOAD_BYTES": str(MAX_BYTES),
        "AUDIOCHAT_MAX_AUDIO_SECONDS": str(MAX_SECONDS),
        **S3_ENV,
    }
    running = start_stack(workdir / "direct-stack", redis_server.url(15), env, {"worker-echo": {}})
    yield running
    running.close()


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> Any:
    s3 = boto3.resource(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return s3.Bucket(BUCKET)


@pytest.fixture
def flac(shared_audio: Path) -> Path:
    return shared_audio / "1272-128104-0000.flac"


def _presign(stack: Stack, **body: Any) -> dict[str, Any]:
    response = stack.http.post("/v1/uploads", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _send_to_store(upload: dict[str, Any], content: bytes, name: str = "audio") -> None:
    """What a client does with the form: a plain multipart POST, no AWS library."""
    form = upload["upload"]
    response = httpx.post(form["url"], data=form["fields"], files={"file": (name, content)})
    assert response.status_code in (200, 201, 204), response.text


def _keys(bucket: Any, upload_id: str) -> set[str]:
    return {o.key for o in bucket.objects.filter(Prefix=f"uploads/{upload_id}/")}


def _job_count(stack: Stack) -> int:
    return int(stack.redis().zcard("audiochat:jobs"))


def test_a_presigned_upload_is_checked_when_a_job_names_it(
    s3_stack: Stack, bucket: Any, flac: Path
) -> None:
    upload = _presign(s3_stack, filename=flac.name, bytes=flac.stat().st_size)
    assert upload["status"] == "pending" and upload["bytes"] is None
    form = upload["upload"]
    assert form["url"].startswith(s3_stack.env["AUDIOCHAT_S3__ENDPOINT_URL"])
    assert form["fields"]["key"] == f"uploads/{upload['id']}/incoming"
    # The declared size is what the form allows (and what the quota counts).
    size = flac.stat().st_size
    assert form["max_bytes"] == size and form["expires_at"] > upload["created_at"]
    # The policy itself limits the size: S3 and MinIO refuse a larger file.
    policy = json.loads(base64.b64decode(form["fields"]["policy"]))
    assert ["content-length-range", 1, size] in policy["conditions"]
    _send_to_store(upload, flac.read_bytes())

    job = s3_stack.submit_text("what was said?", model="echo", upload_ids=[upload["id"]])
    assert job["audio"][0]["key"] == f"uploads/{upload['id']}/audio"
    assert job["audio"][0]["seconds"] == 5.855
    assert s3_stack.run(job)["status"] == "succeeded"
    shown = s3_stack.http.get(f"/v1/uploads/{upload['id']}").json()
    assert shown["status"] == "ready" and shown["bytes"] == flac.stat().st_size
    assert shown["filename"] == flac.name and shown["upload"] is None
    assert _keys(bucket, upload["id"]) == {f"uploads/{upload['id']}/audio"}
    audio = s3_stack.http.get(f"/v1/jobs/{job['id']}/audio")
    assert audio.content == flac.read_bytes()

    # The form can still be used until it expires, but what jobs read has been checked already.
    _send_to_store(upload, b"not audio at all" * 100)
    again = s3_stack.submit_text("and again?", model="echo", upload_ids=[upload["id"]])
    assert s3_stack.run(again)["status"] == "succeeded"
    assert s3_stack.http.get(f"/v1/jobs/{again['id']}/audio").content == flac.read_bytes()


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        ("over-limit", 413, "upload-too-large"),
        ("text", 415, "unsupported-media-type"),
        ("too-long", 422, "audio-too-long"),
    ],
)
def test_a_bad_object_is_refused_like_a_direct_upload_and_removed(
    s3_stack: Stack, bucket: Any, tmp_path: Path, make: str, status: int, code: str
) -> None:
    if make == "over-limit":
        content = os.urandom(MAX_BYTES + 1)
    elif make == "text":
        content = b"this is not audio\n" * 1000
    else:
        rng = np.random.default_rng(0)
        samples = (rng.standard_normal(16000 * (MAX_SECONDS + 2)) * 0.1).astype(np.float32)
        content = write_wav(tmp_path / "long.wav", samples).read_bytes()
    upload = _presign(s3_stack)
    _send_to_store(upload, content)
    before = _job_count(s3_stack)
    response = s3_stack.http.post(
        "/v1/jobs", json={"question": "q", "model": "echo", "upload_ids": [upload["id"]]}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert _job_count(s3_stack) == before
    assert _keys(bucket, upload["id"]) == set()
    assert s3_stack.http.get(f"/v1/uploads/{upload['id']}").json()["status"] == "pending"


def test_an_upload_never_sent_is_incomplete(s3_stack: Stack) -> None:
    upload = _presign(s3_stack)
    before = _job_count(s3_stack)
    response = s3_stack.http.post(
        "/v1/jobs", json={"question": "q", "model": "echo", "upload_ids": [upload["id"]]}
    )
    assert response.status_code == 409 and response.json()["code"] == "upload-incomplete"
    assert _job_count(s3_stack) == before


def test_a_declared_size_over_the_limit_gets_no_form(s3_stack: Stack) -> None:
    response = s3_stack.http.post("/v1/uploads", json={"bytes": MAX_BYTES + 1})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload-too-large"
    bad = s3_stack.http.post("/v1/uploads", json={"bytes": 10, "acl": "public-read"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid-request"


def test_the_local_store_says_presigned_uploads_are_not_available(local_stack: Stack) -> None:
    response = local_stack.http.post("/v1/uploads", json={"filename": "talk.mp3"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "direct-upload-unavailable"


def test_the_cli_sends_a_large_file_straight_to_the_store(
    s3_stack: Stack, bucket: Any, flac: Path
) -> None:
    result = audiochat(
        "ask", str(flac), "--json", "--direct-upload-over", "1000", "--url", s3_stack.url
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    (part,) = job["audio"]
    upload_id = part["key"].split("/")[1]
    assert part["key"] == f"uploads/{upload_id}/audio" and part["seconds"] == 5.855
    assert _keys(bucket, upload_id) == {part["key"]}
    # Below the threshold the file goes with the job, as before.
    small = audiochat("ask", str(flac), "--json", "--url", s3_stack.url)
    assert small.returncode == 0, small.stderr
    assert json.loads(small.stdout)["audio"][0]["key"].startswith("jobs/")


def test_the_cli_falls_back_to_a_form_upload_with_the_local_store(
    local_stack: Stack, flac: Path
) -> None:
    result = audiochat(
        "ask", str(flac), "--json", "--direct-upload-over", "1000", "--url", local_stack.url
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["audio"][0]["key"].startswith("jobs/")


def test_presigned_uploads_count_against_the_audio_quota(
    tmp_path: Path, s3_server: S3Server
) -> None:
    """A presigned file lands in the store whether or not a job names it: what its form allows
    is counted when the form is handed out."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = {
        "AUDIOCHAT_REDIS_URL": redis.url(0),
        "AUDIOCHAT_STORAGE_URL": f"s3://{BUCKET}",
        "AUDIOCHAT_S3__ENDPOINT_URL": s3_server.endpoint_url,
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_MAX_UPLOAD_BYTES": str(MAX_BYTES),
        "AUDIOCHAT_MAX_AUDIO_BYTES_PER_TENANT": str(3 * MAX_BYTES),
        **S3_ENV,
    }
    gateway = Gateway(env, tmp_path, "gateway-quota")
    gateway.start()
    try:
        with httpx.Client(base_url=gateway.url) as client:
            answers = [client.post("/v1/uploads", json={}) for _ in range(3)]
            assert [a.status_code for a in answers] == [201, 201, 201]
            over = client.post("/v1/uploads", json={})
            # A smaller declared size is what its form allows, and what it counts.
            small = client.post("/v1/uploads", json={"bytes": 1000})
    finally:
        gateway.stop()
        redis.stop()
    assert over.status_code == 429, over.text
    assert over.json()["error"]["code"] == "storage-quota-exceeded"  # OpenAI's body here
    assert "retry-after" in over.headers
    assert small.status_code == 429
