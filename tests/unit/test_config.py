from __future__ import annotations

import pytest

from shared.config import Settings


def test_settings_read_prefixed_and_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOCHAT_REDIS_URL", "redis://example:6380/3")
    monkeypatch.setenv("AUDIOCHAT_STORAGE_URL", "s3://bucket")
    monkeypatch.setenv("AUDIOCHAT_S3__ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AUDIOCHAT_S3__SECRET_ACCESS_KEY", "hunter2")
    monkeypatch.setenv("AUDIOCHAT_MODEL", "qwen2-audio")
    settings = Settings()
    assert settings.redis_url == "redis://example:6380/3"
    assert settings.s3.endpoint_url == "http://minio:9000"
    assert settings.model == "qwen2-audio"
    assert settings.s3.secret_access_key is not None
    assert "hunter2" not in repr(settings)


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("AUDIOCHAT_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.model == "embedded"
    assert settings.storage_url.startswith("file://")
