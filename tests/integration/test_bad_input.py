"""A corpus of bad uploads, made on the spot with ffmpeg, espeak-ng and plain bytes.

Each gets a clear 4xx with a stable code, nothing is stored or queued, and the worker stays
healthy afterwards.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from shared.redis_keys import JOB_INDEX_KEY
from tests.support.stack import Stack


def run(*command: str) -> None:
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed: run `make test` (it installs it)")
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> dict[str, Path]:
    """Bad files by name; each name says what is wrong with it."""
    out = tmp_path_factory.mktemp("bad-input")
    files: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        files[name] = out / name
        files[name].write_bytes(data)

    write("executable.wav", Path(shutil.which("ls") or "/bin/ls").read_bytes())
    zipped = out / "archive.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(shared_audio / "1272-128104-0000.flac", "inside.flac")
    files["archive.wav"] = zipped
    write(
        "playlist.wav",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/a.ts\n"
        b"#EXT-X-ENDLIST\n",
    )
    write("page.wav", b"<!doctype html><html><body><audio src='x.wav'></audio></body></html>")
    write("empty.wav", b"")
    run("espeak-ng", "-w", str(out / "speech.wav"), "a short sentence to cut short")
    speech = (out / "speech.wav").read_bytes()
    write("truncated.wav", speech[: len(speech) // 4])
    lying = bytearray(speech)
    data_at = lying.find(b"data")
    struct.pack_into("<I", lying, 4, 3600 * 22050 * 2 + 36)  # claims an hour
    struct.pack_into("<I", lying, data_at + 4, 3600 * 22050 * 2)
    write("lying-header.wav", bytes(lying))
    flac = (shared_audio / "1272-128104-0000.flac").read_bytes()
    write("truncated.flac", flac[: len(flac) // 5])
    write("corrupt.flac", flac[:4000] + bytes((i * 7919) % 256 for i in range(len(flac) - 4000)))
    # Hours of silence in a small Opus file: one minute encoded, then repeated by stream copy.
    minute = out / "minute.ogg"
    run(
        "ffmpeg",
        "-loglevel",
        "error",
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=8000:cl=mono",
        "-t",
        "60",
        "-c:a",
        "libopus",
        "-b:a",
        "6k",
        str(minute),
    )
    files["hours-of-silence.ogg"] = out / "hours-of-silence.ogg"
    run(
        "ffmpeg",
        "-loglevel",
        "error",
        "-stream_loop",
        "179",
        "-i",
        str(minute),
        "-c",
        "copy",
        str(files["hours-of-silence.ogg"]),
    )
    return files


EXPECTED = {
    "executable.wav": (415, "unsupported-media-type"),
    "archive.wav": (415, "unsupported-media-type"),
    "playlist.wav": (415, "unsupported-media-type"),
    "page.wav": (415, "unsupported-media-type"),
    "empty.wav": (422, "invalid-audio"),
    "truncated.wav": (422, "truncated-audio"),
    "lying-header.wav": (422, "truncated-audio"),
    "truncated.flac": (422, "invalid-audio"),
    "corrupt.flac": (422, "invalid-audio"),
    "hours-of-silence.ogg": (422, "audio-too-long"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_upload_gets_a_clear_problem_and_leaves_nothing(
    local_stack: Stack, corpus: dict[str, Path], name: str
) -> None:
    r = local_stack.redis()
    jobs_before = r.zcard(JOB_INDEX_KEY)
    objects = local_stack.workdir.parent / "objects"
    stored_before = sorted(objects.rglob("*")) if objects.exists() else []
    with corpus[name].open("rb") as handle:
        response = local_stack.http.post("/v1/jobs", files={"audio": (name, handle)})
    status, code = EXPECTED[name]
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert r.zcard(JOB_INDEX_KEY) == jobs_before
    assert r.llen("model.echo") == 0
    assert (sorted(objects.rglob("*")) if objects.exists() else []) == stored_before


def test_the_worker_is_healthy_after_the_corpus(local_stack: Stack, shared_audio: Path) -> None:
    final = local_stack.run(local_stack.submit_audio(shared_audio / "1272-128104-0000.flac"))
    assert final["status"] == "succeeded"


@pytest.mark.parametrize(
    "filename",
    [
        "../../../etc/passwd",
        "..\\..\\windows\\win.ini",
        "x" * 4000 + ".wav",
        "\u202egnp.exe.wav",
        "nul\x00byte.wav",
        "/abs/path.wav",
    ],
)
def test_hostile_filenames_never_reach_a_path(
    local_stack: Stack, shared_audio: Path, filename: str
) -> None:
    objects = local_stack.workdir.parent / "objects"
    outside_before = {p for p in objects.parent.iterdir() if p != objects}
    with (shared_audio / "1272-128104-0000.flac").open("rb") as handle:
        response = local_stack.http.post("/v1/jobs", files={"audio": (filename, handle)})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["audio"][0]["key"] == f"jobs/{job['id']}/input"
    assert "/" not in (job["audio"][0]["filename"] or "")
    written = {p.name for p in (objects / "jobs" / job["id"]).iterdir()}
    assert written == {"input", "input.meta.json"}
    assert {p for p in objects.parent.iterdir() if p != objects} == outside_before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"question": "q", "max_new_tokens": 10**9}, "max_new_tokens"),
        ({"question": "q", "max_new_tokens": "many"}, "max_new_tokens"),
        ({"question": "q", "temperature": -1}, "temperature"),
        ({"question": "q", "temperature": "hot"}, "temperature"),
        ({"question": 42}, "question"),
        ({"question": "q", "language": "../en"}, "language"),
        ({"question": "q", "history": "not a list"}, "history"),
        ({"question": "q", "surprise": True}, "surprise"),
    ],
)
def test_wrong_fields_are_422_naming_the_field(
    local_stack: Stack, body: dict[str, object], field: str
) -> None:
    response = local_stack.http.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_malformed_json_is_422(local_stack: Stack) -> None:
    for raw in (b"{", b"[1, 2]", b"\xff\xfe", b'"just a string"'):
        response = local_stack.http.post(
            "/v1/jobs", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, raw
        assert response.json()["code"] == "invalid-request"


DEEP = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_json_is_a_problem_not_a_500(local_stack: Stack) -> None:
    jobs_before = local_stack.redis().zcard(JOB_INDEX_KEY)
    body = local_stack.http.post(
        "/v1/jobs",
        content='{"question": "q", "history": ' + DEEP + "}",
        headers={"content-type": "application/json"},
    )
    form = local_stack.http.post(
        "/v1/jobs", files={"question": (None, "q"), "history": (None, DEEP)}
    )
    chat = local_stack.http.post(
        "/v1/chat/completions",
        content='{"model": "echo", "messages": ' + DEEP + "}",
        headers={"content-type": "application/json"},
    )
    for response in (body, form):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid-request"
    assert form.json()["errors"][0]["field"] == "history"
    # OpenAI's paths answer in OpenAI's error body.
    assert chat.status_code == 400, chat.text
    assert chat.json()["error"]["code"] == "invalid-request"
    assert local_stack.redis().zcard(JOB_INDEX_KEY) == jobs_before
