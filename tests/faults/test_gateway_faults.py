"""The gateway dies at the worst moment: what it was doing is finished or undone by others."""

from __future__ import annotations

import contextlib
import hashlib
import signal
import threading
from pathlib import Path

import httpx

from shared.events import EventPublisher
from shared.jobs import DEFAULT_TENANT, JobRepository
from shared.redis_keys import idempotency_key
from shared.schemas import EventName
from testbed.processes import wait_for
from tests.faults.conftest import FAULT_SETTINGS, FaultStack
from tests.support.jobs import typed_job


def test_a_gateway_killed_after_claiming_an_idempotency_key_does_not_lock_it(
    faults: FaultStack, shared_audio: Path
) -> None:
    stack = faults.stack
    audio = (shared_audio / "1272-128104-0000.flac").read_bytes()
    headers = {"Idempotency-Key": "killed-mid-submit"}
    claim = idempotency_key(DEFAULT_TENANT, hashlib.sha256(b"killed-mid-submit").hexdigest())
    r = faults.redis_server.client()

    def submit(timeout: float = 30) -> httpx.Response:
        return httpx.post(
            f"{stack.url}/v1/jobs",
            files={"audio": ("q.flac", audio)},
            headers=headers,
            timeout=timeout,
        )

    def submit_and_lose_the_answer() -> None:
        with contextlib.suppress(httpx.HTTPError):
            submit()

    # The store freezes, so the gateway stops between claiming the key and creating the job.
    faults.s3_server.process.popen.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    first = threading.Thread(target=submit_and_lose_the_answer)
    try:
        first.start()
        wait_for(lambda: bool(r.exists(claim)), 30, "the gateway to claim the key")
        stack.gateway.process.stop(signal.SIGKILL)
    finally:
        faults.s3_server.process.popen.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    first.join(timeout=30)
    stack.gateway.start()
    # A retry right away finds the claim of a submission nobody will finish: told to wait.
    early = submit()
    if early.status_code == 409:
        assert early.json()["code"] == "conflict"
        pending = int(FAULT_SETTINGS["AUDIOCHAT_SUBMIT_GRACE_SECONDS"])
        assert 0 < int(early.headers["retry-after"]) <= pending
    # Within that time the key is free again, and the retry makes the job.
    created: list[httpx.Response] = []
    wait_for(
        lambda: created.append(submit()) or created[-1].status_code == 202,
        30,
        "a retry to be accepted",
        interval=0.5,
    )
    job = created[-1].json()
    # ...and from then on the key gives back that job, for the retention, not a new one.
    assert r.ttl(claim) > 600
    again = submit()
    assert again.status_code == 202 and again.json()["id"] == job["id"]
    assert faults.final(job["id"])["status"] == "succeeded"


def test_a_job_whose_gateway_died_before_queueing_it_is_queued_by_another(
    faults: FaultStack,
) -> None:
    """What a gateway killed between recording a job and queueing it leaves behind (made here
    by the same calls it makes), and the stack's gateway queues it once the grace is over."""
    r = faults.redis_server.client()
    job = typed_job(question="orphaned", max_new_tokens=16)
    JobRepository(r, 600).create(job, DEFAULT_TENANT)
    EventPublisher(r, 600).publish(job.id, EventName.STATUS, {"status": "queued"})
    # Never queued: no task anywhere. Within the grace (3 s here) and a maintenance pass or
    # two, the job runs to its end.
    final = faults.final(job.id, timeout=30)
    assert final["status"] == "succeeded", final
    assert final["answer"] == "echo: orphaned"
    log = faults.stack.gateway.process.log_path.read_text()
    assert f"queued: its gateway died before queueing it job_id={job.id}" in log
