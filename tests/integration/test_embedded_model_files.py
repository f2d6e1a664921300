"""A real `audiochat worker` given model paths it cannot use stops at once, saying which
setting is wrong, and never registers as a live worker."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from shared.config import EmbeddedSettings
from shared.workers import WorkerRegistry
from testbed.processes import ProcessExited, RedisServer, Worker
from worker.backends.local_models import GGUF_MAGIC, whisper_folder


def failed_start(redis_server: RedisServer, workdir: Path, name: str, **env: str) -> Worker:
    worker = Worker(
        {"AUDIOCHAT_REDIS_URL": redis_server.url(5), "AUDIOCHAT_MODEL": "embedded", **env},
        workdir,
        name,
    )
    with pytest.raises(ProcessExited):
        worker.start(timeout=120)
    assert worker.process.popen is not None
    assert worker.process.popen.wait(10) == 1
    assert not any(
        w.pid == worker.process.pid for w in WorkerRegistry(redis_server.client(5)).live_workers()
    )
    return worker


def test_a_missing_whisper_folder_stops_the_worker(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    missing = tmp_path / "whisper-small"
    worker = failed_start(
        redis_server, tmp_path, "no-whisper", AUDIOCHAT_EMBEDDED__WHISPER_PATH=str(missing)
    )
    log = worker.process.log_tail()
    assert f"Error: AUDIOCHAT_EMBEDDED__WHISPER_PATH={missing}: no such file or folder" in log
    # One clear line, not a traceback through the model libraries.
    assert "Traceback" not in log


def test_a_file_that_is_not_a_gguf_stops_the_worker(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("<html>404 Not Found</html>")
    worker = failed_start(
        redis_server, tmp_path, "not-gguf", AUDIOCHAT_EMBEDDED__LLM_PATH=str(fake)
    )
    assert f"Error: AUDIOCHAT_EMBEDDED__LLM_PATH={fake} is not a GGUF file" in (
        worker.process.log_tail()
    )


def test_a_whisper_folder_given_as_the_llm_stops_the_worker(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    folder = tmp_path / "faster-whisper-small"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"alignment_heads": [], "lang_ids": []}))
    (folder / "model.bin").write_bytes(b"\0" * 64)
    worker = failed_start(
        redis_server, tmp_path, "wrong-kind", AUDIOCHAT_EMBEDDED__LLM_PATH=str(folder)
    )
    assert "is not a transformers model folder: its config.json has no model_type" in (
        worker.process.log_tail()
    )


def test_a_damaged_gguf_stops_the_worker_once_transformers_reads_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # The right magic number, then nothing a GGUF reader can parse: the path checks pass and
    # the load itself fails, still as one line naming the file.
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(GGUF_MAGIC + b"\x03\x00\x00\x00" + b"\xff" * 64)
    worker = failed_start(
        redis_server, tmp_path, "damaged", AUDIOCHAT_EMBEDDED__LLM_PATH=str(damaged)
    )
    log = worker.process.log_tail()
    assert f"Error: transformers could not load {damaged}" in log
    assert "Traceback" not in log


def test_an_unreadable_model_file_stops_the_worker(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    tiny_en = whisper_folder(EmbeddedSettings())
    folder = tmp_path / "whisper"
    shutil.copytree(tiny_en, folder)
    (folder / "model.bin").chmod(0o000)
    worker = Worker(
        {"AUDIOCHAT_REDIS_URL": redis_server.url(5), "AUDIOCHAT_MODEL": "embedded",
         "AUDIOCHAT_EMBEDDED__WHISPER_PATH": str(folder)},
        tmp_path,
        "unreadable",
    )  # fmt: skip
    if os.geteuid() == 0:
        # Root reads any file whatever its mode: this worker runs as root without the
        # capabilities that allow it (setpriv, util-linux), as an ordinary user would.
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to test unreadable files as root"
        worker.process.args = [setpriv, "--bounding-set=-dac_override,-dac_read_search",
                               *worker.process.args]  # fmt: skip
    with pytest.raises(ProcessExited):
        worker.start(timeout=120)
    assert worker.process.popen is not None and worker.process.popen.wait(10) == 1
    assert f"cannot read {folder / 'model.bin'}: Permission denied" in worker.process.log_tail()
