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


def test_answer_length_defaults_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.max_new_tokens_for("embedded") == 64
    assert settings.max_new_tokens_for("qwen2-audio") == settings.default_max_new_tokens == 256
    monkeypatch.setenv("AUDIOCHAT_MAX_NEW_TOKENS_BY_MODEL", '{"embedded": 200, "echo": 8}')
    monkeypatch.setenv("AUDIOCHAT_DEFAULT_MAX_NEW_TOKENS", "300")
    settings = Settings()
    assert settings.max_new_tokens_for("embedded") == 200
    assert settings.max_new_tokens_for("echo") == 8
    assert settings.max_new_tokens_for("qwen-audio-chat") == 300


def test_an_answer_length_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_new_tokens_by_model"):
        Settings(max_new_tokens_by_model={"embedded": 0})


def test_embedded_settings_are_read_as_a_nested_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOCHAT_EMBEDDED__SYSTEM_PROMPT", "")
    monkeypatch.setenv("AUDIOCHAT_EMBEDDED__BEAM_SIZE", "1")
    monkeypatch.setenv("AUDIOCHAT_EMBEDDED__ANSWER_EXAMPLES", "false")
    embedded = Settings().embedded
    assert (embedded.system_prompt, embedded.beam_size, embedded.answer_examples) == ("", 1, False)
    with pytest.raises(ValueError, match="repetition_penalty"):
        Settings(embedded={"repetition_penalty": 0.5})
