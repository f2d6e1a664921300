"""The web page in a real headless Chromium (the Debian package), driven by Playwright.

Chromium's fake microphone plays ../shared/audio/1272-128104-0000.flac (as WAV), so holding the
record button records real speech; the session stack's embedded models transcribe and answer
it. A second stack with API keys checks that the page asks for a key once and keeps it.

Set AUDIOCHAT_SCREENSHOT to a path to save a screenshot of the page there (docs/web-page.png
is made this way).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from api.auth import hash_api_key
from testbed.processes import RedisServer
from tests.conftest import start_stack
from tests.support.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
API_KEY = "ac_web_page_test_key"
# Long enough for the whole sentence (5.9 s), so the transcript can be checked word by word.
RECORD_SECONDS = 6.5


@pytest.fixture(scope="module")
def speech_wav(shared_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared recording as 16-bit PCM WAV, the format Chromium's fake microphone plays."""
    wav = tmp_path_factory.mktemp("web") / "speech.wav"
    source = shared_audio / "1272-128104-0000.flac"
    command = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(source), "-c:a", "pcm_s16le"]
    subprocess.run([*command, str(wav)], check=True)
    return wav


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright, speech_wav: Path) -> Iterator[Browser]:
    if not CHROMIUM.exists() or shutil.which("chromedriver") is None:
        pytest.fail("Chromium is not installed: run scripts/install-system-deps.sh")
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={speech_wav}",
        ],
    )
    yield launched
    launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab in a fresh profile (its own sessionStorage)."""
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture(scope="module")
def keyed_stack(workdir: Path, redis_server: RedisServer) -> Iterator[Stack]:
    """A gateway that needs an API key, with the scripted backend (tests/fakes/backends.py)."""
    env = {
        "AUDIOCHAT_STORAGE_URL": f"file://{workdir / 'web-keyed-objects'}",
        "AUDIOCHAT_MODEL": "echo",
        "AUDIOCHAT_API_KEYS": json.dumps({hash_api_key(API_KEY): "web"}),
        "AUDIOCHAT_TOKEN_SECRET": "a-web-test-secret",
    }
    running = start_stack(
        workdir / "web-keyed-stack",
        redis_server.url(13),
        env,
        {"worker-web": {"AUDIOCHAT_BACKEND_CLASS": "tests.fakes.backends:ScriptedBackend"}},
    )
    yield running
    running.close()


def hold_to_record(page: Page, seconds: float) -> None:
    """Press the record button and keep it down until the page has recorded `seconds`."""
    page.hover("#record")
    page.mouse.down()
    page.wait_for_function(
        f"() => Number(document.querySelector('#record').dataset.seconds || 0) >= {seconds}"
    )
    page.mouse.up()


def wait_until_ended(page: Page, count: int, timeout_ms: float) -> None:
    page.wait_for_function(
        f"() => document.querySelectorAll('.job.finished').length >= {count}", timeout=timeout_ms
    )


@pytest.mark.slow
def test_record_send_and_see_the_transcript_and_answer(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    page.goto(stack.url)
    assert page.title() == "audiochat"
    # The page says what the laptop default is for, and where real answers come from.
    expect = page.locator(".expect").inner_text()
    assert "small CPU models" in expect and "docs/gpu.md" in expect, expect

    hold_to_record(page, RECORD_SECONDS)
    wait_until_ended(page, 1, timeout_ms=240_000)
    entry = page.locator(".job").first
    assert entry.get_attribute("data-status") == "succeeded", entry.inner_text()
    heard = entry.locator(".transcript .text").inner_text()
    answer = entry.locator(".answer .text").inner_text()
    assert "quilter" in heard.lower() and "middle classes" in heard.lower(), heard
    assert answer.strip()
    # What the page shows is the job as the server has it.
    job = stack.job(entry.get_attribute("data-job-id") or "")
    assert job["status"] == "succeeded"
    assert (job["transcript"], job["answer"]) == (heard.strip(), answer.strip())
    assert job["audio"][0]["filename"] == "recording.webm"
    assert 6 <= job["audio"][0]["seconds"] <= 9

    # A typed question next: the recording stays listed below it.
    page.fill("#question", "What is the capital of France?")
    page.click("#send")
    wait_until_ended(page, 2, timeout_ms=240_000)
    entries = page.locator(".job")
    assert entries.count() == 2
    assert entries.nth(0).locator(".asked").inner_text() == "What is the capital of France?"
    assert entries.nth(0).locator(".answer .text").inner_text().strip()
    assert entries.nth(1).get_attribute("data-job-id") == job["id"]

    screenshot = os.environ.get("AUDIOCHAT_SCREENSHOT") or str(tmp_path / "web-page.png")
    page.screenshot(path=screenshot, full_page=True)


def test_with_api_keys_the_page_asks_for_a_key_once(keyed_stack: Stack, page: Page) -> None:
    event_urls: list[str] = []
    page.on("request", lambda r: event_urls.append(r.url) if "/events" in r.url else None)
    page.goto(keyed_stack.url)

    page.fill("#question", "tokens:3")
    page.click("#send")
    dialog = page.locator("#key-dialog")
    dialog.wait_for(state="visible")
    page.fill("#key-input", "not-the-key")
    page.click("#key-ok")
    page.wait_for_function(
        "() => document.querySelector('#key-reason').textContent.includes('not accepted')"
    )
    assert dialog.is_visible()
    page.fill("#key-input", API_KEY)
    page.click("#key-ok")
    wait_until_ended(page, 1, timeout_ms=60_000)
    first = page.locator(".job").first
    assert first.get_attribute("data-status") == "succeeded", first.inner_text()
    assert first.locator(".answer .text").inner_text() == "t0 t1 t2"
    assert page.evaluate("sessionStorage.getItem('audiochat.apiKey')") == API_KEY

    # The second question goes straight through with the kept key.
    page.fill("#question", "tokens:2")
    page.click("#send")
    wait_until_ended(page, 2, timeout_ms=60_000)
    assert not dialog.is_visible()
    assert page.locator(".job").first.locator(".answer .text").inner_text() == "t0 t1"
    # EventSource cannot send the key: it opened each job's events with the job's token.
    assert len(event_urls) == 2 and all("token=" in url for url in event_urls), event_urls


def test_a_failed_job_shows_its_error(fake_stack: Stack, page: Page) -> None:
    page.goto(fake_stack.url)
    page.fill("#question", "fail:1")
    page.click("#send")
    wait_until_ended(page, 1, timeout_ms=60_000)
    entry = page.locator(".job").first
    assert entry.get_attribute("data-status") == "failed"
    assert entry.locator(".error").inner_text() == "model-error: RuntimeError: scripted failure"
