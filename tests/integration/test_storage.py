"""Both audio stores, the S3 one against a real S3 HTTP server (moto in server mode)."""

from __future__ import annotations

import io
from pathlib import Path

import boto3
import pytest

from shared.config import S3Settings, Settings
from shared.errors import StorageUnavailable
from shared.storage import AudioStore, LocalDirectoryStore, ObjectNotFound, S3Store, open_store
from testbed.processes import S3Server, free_port


def _s3_settings(endpoint: str, bucket: str) -> Settings:
    return Settings(
        storage_url=f"s3://{bucket}",
        s3=S3Settings(endpoint_url=endpoint, access_key_id="testing", secret_access_key="testing"),
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AudioStore:
    if request.param == "local":
        return open_store(Settings(storage_url=f"file://{tmp_path}/objects"))
    s3_server: S3Server = request.getfixturevalue("s3_server")
    return open_store(_s3_settings(s3_server.endpoint_url, f"store-{tmp_path.name.lower()[-20:]}"))


def test_put_download_delete_round_trip(store: AudioStore, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1000
    store.put("jobs/abc/input", io.BytesIO(payload), {"original-filename": "a%20b.wav"})
    target = tmp_path / "out"
    metadata = store.download("jobs/abc/input", target)
    assert target.read_bytes() == payload
    assert metadata == {"original-filename": "a%20b.wav"}
    store.delete("jobs/abc/input")
    with pytest.raises(ObjectNotFound):
        store.download("jobs/abc/input", tmp_path / "gone")
    store.delete("jobs/abc/input")  # deleting twice is fine


def test_store_refuses_keys_that_escape_its_prefix(store: AudioStore) -> None:
    with pytest.raises(ValueError):
        store.put("../outside", io.BytesIO(b"x"), {})


def test_s3_bucket_is_created_at_startup(s3_server: S3Server) -> None:
    open_store(_s3_settings(s3_server.endpoint_url, "fresh-bucket"))
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    assert "fresh-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_local_store_writes_nothing_half_done(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path)

    class Broken(io.RawIOBase):
        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            raise OSError("client went away")

    with pytest.raises(OSError):
        store.put("jobs/x/input", Broken(), {})  # type: ignore[arg-type]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_unreachable_s3_is_storage_unavailable() -> None:
    store = S3Store.from_settings(_s3_settings(f"http://127.0.0.1:{free_port()}", "b"), "b")
    with pytest.raises(StorageUnavailable):
        store.check()
