"""Recordings uploaded on their own (`POST /v1/uploads`, `POST /upload`) and jobs that use them,
against a real gateway, Redis, S3 server and Celery workers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.jobs import DEFAULT_TENANT
from shared.redis_keys import upload_record_key
from shared.upload_records import UploadRecord, UploadRepository
from testbed.processes import RedisServer
from tests.support.stack import Stack

ECHO_TRANSCRIPT = "this is the echo backend's transcript"
RETENTION = 7 * 24 * 3600  # the default job retention; the test stacks keep it


def _upload(stack: Stack, path: Path, url: str = "/v1/uploads", **fields: str) -> httpx.Response:
    with path.open("rb") as handle:
        return stack.http.post(url, data=fields, files={"file": (path.name, handle)})


def _upload_keys(stack: Stack) -> set[bytes]:
    return set(stack.redis().scan_iter(match=upload_record_key("*")))


@pytest.fixture
def flac(shared_audio: Path) -> Path:
    return shared_audio / "1272-128104-0000.flac"


def test_upload_returns_its_id_and_expires_with_job_retention(stack: Stack, flac: Path) -> None:
    response = _upload(stack, flac)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/uploads/{body['id']}"
    assert body["object"] == "upload" and body["filename"] == flac.name
    assert body["bytes"] == flac.stat().st_size and body["seconds"] == 5.855
    assert body["expires_at"] - body["created_at"] == RETENTION
    ttl = stack.redis().ttl(upload_record_key(body["id"]))
    assert RETENTION - 60 < ttl <= RETENTION
    assert stack.http.get(f"/v1/uploads/{body['id']}").json() == body


def test_original_client_upload_keeps_its_client_id(stack: Stack, flac: Path) -> None:
    response = _upload(stack, flac, "/upload", clientid="audio-chat-web-1")
    assert response.status_code == 200, response.text
    raw = stack.redis().get(upload_record_key(response.json()["id"]))
    assert raw is not None
    record = json.loads(raw)
    assert record["client_id"] == "audio-chat-web-1"
    assert record["tenant"] == DEFAULT_TENANT
    assert record["key"] == f"uploads/{record['id']}/audio"


def test_job_uses_uploaded_audio_in_place(stack: Stack, flac: Path) -> None:
    upload_id = _upload(stack, flac).json()["id"]
    for request in (
        {"json": {"upload_ids": [upload_id], "model": "echo"}},
        # multipart without a file: each field a part with no filename
        {"files": {"upload_ids": (None, upload_id), "model": (None, "echo")}},
    ):
        response = stack.http.post("/v1/jobs", **request)
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["has_audio"]
        assert job["audio"] == [
            {"key": f"uploads/{upload_id}/audio", "filename": flac.name, "seconds": 5.855}
        ]
        final = stack.run(job)
        assert final["transcript"] == ECHO_TRANSCRIPT
        assert final["answer"] == f"You asked: {ECHO_TRANSCRIPT}"


def test_transcribe_only_job_from_an_upload(stack: Stack, flac: Path) -> None:
    upload_id = _upload(stack, flac).json()["id"]
    job = stack.submit_text("unused", model="echo", upload_ids=[upload_id], task="transcribe")
    final = stack.run(job)
    assert final["status"] == "succeeded" and final["transcript"] == ECHO_TRANSCRIPT
    assert final["segments"] == [{"start": 0.0, "end": 5.855, "text": ECHO_TRANSCRIPT}]


def test_history_turn_with_an_upload_is_heard(fake_stack: Stack, flac: Path) -> None:
    upload_id = _upload(fake_stack, flac).json()["id"]
    turn = {"question": "what did I say?", "answer": "you spoke", "upload_id": upload_id}
    job = fake_stack.submit_text("and now?", model="echo", history=[turn])
    assert fake_stack.run(job)["answer"] == "echo after 1 turns: and now?"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": "q", "upload_ids": ["0" * 32]}, "upload_ids"),
        ({"question": "q", "upload_ids": ["../../etc/passwd"]}, "upload_ids"),
        (
            {"question": "q", "history": [{"question": "a", "answer": "b", "upload_id": "f" * 32}]},
            "history",
        ),
    ],
)
def test_unknown_upload_is_a_404_problem_and_creates_no_job(
    stack: Stack, body: dict[str, Any], field: str
) -> None:
    before = stack.redis().zcard("audiochat:jobs")
    response = stack.http.post("/v1/jobs", json={**body, "model": "echo"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "upload-not-found"
    assert problem["errors"][0]["field"] == field
    assert stack.redis().zcard("audiochat:jobs") == before


def test_unknown_upload_read_is_openais_404(stack: Stack) -> None:
    response = stack.http.get(f"/v1/uploads/{'0' * 32}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "upload-not-found"


def test_bad_uploads_are_refused_and_store_nothing(stack: Stack, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not audio\n" * 100)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    before = _upload_keys(stack)
    for path, status, code in (
        (text, 415, "unsupported-media-type"),
        (empty, 400, "invalid-audio"),
    ):
        response = _upload(stack, path)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error"
    missing = stack.http.post("/v1/uploads", data={"clientid": "x"}, files={"other": ("a", b"a")})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"
    assert _upload_keys(stack) == before


def test_another_tenants_upload_does_not_exist(redis_server: RedisServer) -> None:
    uploads = UploadRepository(redis_server.client(5), retention_seconds=60)
    now = datetime.now(UTC)
    record = UploadRecord(
        id="a" * 32,
        tenant="alice",
        key="uploads/" + "a" * 32 + "/audio",
        bytes=10,
        seconds=1.0,
        created_at=now,
        expires_at=now + timedelta(seconds=60),
    )
    uploads.create(record)
    assert uploads.get(record.id, "alice") == record
    assert uploads.get(record.id, "bob") is None
    uploads.set_transcript(record.id, "bob", "not bob's to write")
    assert uploads.get(record.id, "alice") == record
    uploads.set_transcript(record.id, "alice", "hello")
    updated = uploads.get(record.id, "alice")
    assert updated is not None and updated.transcript == "hello"
    assert 0 < redis_server.client(5).ttl(upload_record_key(record.id)) <= 60
