"""Settings for every audiochat process, read from `AUDIOCHAT_*` environment variables.

Nothing reads the environment at import time: entry points build a `Settings` and pass it on,
and tests build one from plain keyword arguments.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class S3Settings(BaseModel):
    """Where the S3-compatible object store is (MinIO, AWS, or a test server)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None


class Settings(BaseSettings):
    """All settings; nested groups are read with `__`, e.g. `AUDIOCHAT_S3__ENDPOINT_URL`."""

    model_config = SettingsConfigDict(
        env_prefix="AUDIOCHAT_", env_nested_delimiter="__", extra="ignore"
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Connections each gateway process may open (the pool blocks beyond it), so Redis sees a
    # fixed number of connections however many clients follow events.
    redis_max_connections: int = Field(default=32, ge=2)
    # `file:///absolute/path` (the embedded default) or `s3://bucket`.
    storage_url: str = "file://./.data/objects"
    s3: S3Settings = Field(default_factory=S3Settings)

    # The model a job gets when it names none, and the model a worker serves.
    model: str = "embedded"
    model_path: str | None = None
    device: str | None = None
    # Import path `package.module:Class` of a backend outside audiochat (plugins, test fakes).
    backend_class: str | None = None
    # Where converted model files are cached (the embedded LLM is converted from GGUF once).
    cache_dir: str = "~/.cache/audiochat"

    # How long a job's record, audio and event log are kept after it is created.
    job_retention_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_audio_seconds: float = Field(default=600.0, gt=0)
    default_max_new_tokens: int = Field(default=256, ge=1)
    max_new_tokens_limit: int = Field(default=2048, ge=1)

    # Seconds between SSE keep-alive comments.
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    # Deltas are coalesced so a job publishes at most this many events per second.
    max_events_per_second: float = Field(default=20.0, gt=0)
    # Must exceed the longest job: an unacknowledged task is redelivered after it.
    broker_visibility_timeout: int = Field(default=3600, ge=60)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_level: str = "INFO"
