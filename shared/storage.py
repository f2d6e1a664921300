"""Where uploaded audio lives: an S3-compatible bucket, or a local directory by default.

Keys are chosen by the server (`jobs/{id}/input`); a client's filename never becomes part of a
key or a path, and is kept only as percent-escaped metadata.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import quote, unquote, urlparse

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig

from shared.config import S3Settings, Settings

if TYPE_CHECKING:
    # The boto3 type stubs (dev extra); the gateway and workers run without them.
    from mypy_boto3_s3 import S3Client
from shared.errors import Conflict, ServiceError, StorageUnavailable, UploadTooLarge

logger = logging.getLogger(__name__)

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


def audio_key(job_id: str, index: int = 0) -> str:
    """The object key of a job's uploaded audio (`index` counts its audio parts)."""
    return f"jobs/{job_id}/input" if index == 0 else f"jobs/{job_id}/input-{index}"


def upload_key(upload_id: str) -> str:
    """The object key of a recording uploaded on its own (`POST /v1/uploads`)."""
    return f"uploads/{upload_id}/audio"


def staging_key(upload_id: str) -> str:
    """Where a client puts a presigned upload; it moves to `upload_key` once checked, so the
    object a job uses is never one the client can still overwrite."""
    return f"uploads/{upload_id}/incoming"


def escape_filename(filename: str | None) -> str | None:
    """A client's filename reduced to printable, percent-escaped ASCII for metadata."""
    if not filename:
        return None
    return quote(filename[:255], safe=" ._-()")


def unescape_filename(escaped: str | None) -> str | None:
    return unquote(escaped) if escaped else None


class ObjectNotFound(ServiceError):
    status = 404
    code = "object-not-found"
    title = "No such object in the audio store"


class AudioStore(Protocol):
    """The few operations audiochat needs from an object store."""

    def put(self, key: str, source: BinaryIO, metadata: dict[str, str]) -> None:
        """Store the whole of `source` under `key`, all or nothing."""

    def download(self, key: str, destination: Path) -> dict[str, str]:
        """Copy the object to a local file and return its metadata."""

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing one is not an error."""

    def check(self) -> None:
        """Raise StorageUnavailable unless the store answers."""


def _checked_key(key: str) -> str:
    if not _KEY_PATTERN.fullmatch(key) or ".." in key.split("/"):
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalDirectoryStore:
    """Objects as files under one directory, written atomically, metadata in a sidecar file."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _checked_key(key)

    def put(self, key: str, source: BinaryIO, metadata: dict[str, str]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write next to the target and rename, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
            meta_tmp = f"{tmp}.meta"
            Path(meta_tmp).write_text(json.dumps(metadata))
            os.replace(meta_tmp, f"{path}.meta.json")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            Path(f"{tmp}.meta").unlink(missing_ok=True)
            raise

    def download(self, key: str, destination: Path) -> dict[str, str]:
        path = self._path(key)
        try:
            shutil.copyfile(path, destination)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object {key}") from exc
        meta = Path(f"{path}.meta.json")
        return json.loads(meta.read_text()) if meta.exists() else {}

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        Path(f"{path}.meta.json").unlink(missing_ok=True)

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageUnavailable(f"{self.root} is not writable")


class UploadChanged(Conflict):
    code = "upload-changed"
    title = "The uploaded object changed while it was being checked"


def _s3_client(s3: S3Settings, endpoint_url: str | None) -> S3Client:
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=s3.region,
        aws_access_key_id=s3.access_key_id.get_secret_value() if s3.access_key_id else None,
        aws_secret_access_key=(
            s3.secret_access_key.get_secret_value() if s3.secret_access_key else None
        ),
        config=botocore.config.Config(
            connect_timeout=2,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
        ),
    )
    return client


class S3Store:
    """Objects in an S3 bucket (MinIO, AWS, or any S3-compatible server) through boto3."""

    def __init__(self, client: S3Client, bucket: str, presigner: S3Client | None = None) -> None:
        self._s3 = client
        # Signs presigned uploads with the endpoint clients reach, which may not be ours.
        self._presigner = presigner or client
        self.bucket = bucket
        # Threaded uploads read parts ahead into memory: by default a 100 MB upload grew the
        # gateway by ~100 MB, and even with two parts in flight by 36 MB (15 MB for 10 MB).
        # One part at a time keeps it flat (~10 MB for either size, bench/upload.py), at about
        # three quarters of the threaded speed against a loopback S3 server.
        self._transfer = TransferConfig(use_threads=False)

    @classmethod
    def from_settings(cls, settings: Settings, bucket: str) -> S3Store:
        s3 = settings.s3
        client = _s3_client(s3, s3.endpoint_url)
        public = s3.public_endpoint_url
        presigner = _s3_client(s3, public) if public and public != s3.endpoint_url else None
        return cls(client, bucket, presigner)

    def presigned_post(self, key: str, max_bytes: int, expires_seconds: int) -> dict[str, Any]:
        """A form (`url`, `fields`) a client POSTs one file of at most `max_bytes` to, under
        `key` only, until it expires; S3 and MinIO refuse anything larger."""
        post: dict[str, Any] = self._presigner.generate_presigned_post(
            Bucket=self.bucket,
            Key=_checked_key(key),
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_seconds,
        )
        return post

    def fetch(self, key: str, destination: Path, max_bytes: int) -> str:
        """Copy an object of at most `max_bytes` to a local file; returns its ETag. A larger
        object is UploadTooLarge before a byte of it is read."""
        try:
            got = self._s3.get_object(Bucket=self.bucket, Key=_checked_key(key))
            if got["ContentLength"] > max_bytes:
                got["Body"].close()
                raise UploadTooLarge(f"the upload is larger than {max_bytes} bytes")
            body = got["Body"]
            try:
                with destination.open("wb") as out:
                    copied = 0
                    for chunk in body.iter_chunks(1024 * 1024):
                        copied += len(chunk)
                        if copied > max_bytes:
                            raise UploadTooLarge(f"the upload is larger than {max_bytes} bytes")
                        out.write(chunk)
            finally:
                body.close()
            return str(got["ETag"])
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise ObjectNotFound(f"no object {key}") from exc
            raise StorageUnavailable(str(exc)) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageUnavailable(str(exc)) from exc

    def copy(self, source: str, destination: str, etag: str, metadata: dict[str, str]) -> None:
        """Copy `source` to `destination` only if it is still the object with `etag`: what was
        checked is what is kept, even if the client uploads again meanwhile."""
        try:
            copied = self._s3.copy_object(
                Bucket=self.bucket,
                Key=_checked_key(destination),
                CopySource={"Bucket": self.bucket, "Key": _checked_key(source)},
                CopySourceIfMatch=etag,
                Metadata=metadata,
                MetadataDirective="REPLACE",
            )
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("412", "PreconditionFailed"):
                raise UploadChanged("the object was replaced while it was checked") from exc
            raise StorageUnavailable(str(exc)) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageUnavailable(str(exc)) from exc
        # Some S3-compatible servers ignore the condition: compare what was copied.
        if copied.get("CopyObjectResult", {}).get("ETag") != etag:
            self.delete(destination)
            raise UploadChanged("the object was replaced while it was checked")

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise StorageUnavailable(str(exc)) from exc
            self._s3.create_bucket(Bucket=self.bucket)
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageUnavailable(str(exc)) from exc

    def put(self, key: str, source: BinaryIO, metadata: dict[str, str]) -> None:
        try:
            self._s3.upload_fileobj(
                source,
                self.bucket,
                _checked_key(key),
                ExtraArgs={"Metadata": metadata},
                Config=self._transfer,
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise StorageUnavailable(str(exc)) from exc

    def download(self, key: str, destination: Path) -> dict[str, str]:
        try:
            self._s3.download_file(self.bucket, _checked_key(key), str(destination))
            head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise ObjectNotFound(f"no object {key}") from exc
            raise StorageUnavailable(str(exc)) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageUnavailable(str(exc)) from exc
        return dict(head.get("Metadata", {}))

    def delete(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=_checked_key(key))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise StorageUnavailable(str(exc)) from exc

    def check(self) -> None:
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise StorageUnavailable(str(exc)) from exc


def open_store(settings: Settings) -> AudioStore:
    """The store named by `AUDIOCHAT_STORAGE_URL` (`file:///path` or `s3://bucket`)."""
    url = urlparse(settings.storage_url)
    if url.scheme == "file":
        return LocalDirectoryStore(Path(unquote(url.netloc + url.path)))
    if url.scheme == "s3" and url.netloc:
        store = S3Store.from_settings(settings, url.netloc)
        store.ensure_bucket()
        return store
    raise ValueError(f"unsupported AUDIOCHAT_STORAGE_URL {settings.storage_url!r}")


def delete_quietly(store: AudioStore, key: str, after: str, job_id: str | None = None) -> None:
    """Best-effort removal of an object `after` something failed: the failure that brought us
    here is the one to report, and an object left behind still goes with the expiry sweep."""
    try:
        store.delete(key)
    except Exception:
        extra = {"job_id": job_id} if job_id else {}
        logger.exception("removing %s after %s failed", key, after, extra=extra)
