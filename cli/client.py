"""A small HTTP client for the audiochat API, used by the CLI (and handy in scripts)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from shared.schemas import EventName, JobEvent

_EVENT_NAMES = frozenset(name.value for name in EventName)


# Files larger than this go straight to the store when the server can take them that way.
DIRECT_UPLOAD_BYTES = 8 * 1024 * 1024


class ApiError(Exception):
    """A problem document (or, from the OpenAI-compatible paths, an error body) from the server."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        if isinstance(problem.get("error"), dict):
            error = problem["error"]
            problem = {"code": error.get("code"), "detail": error.get("message")}
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or "error"
        super().__init__(f"{status} {problem.get('code', 'error')}: {detail}")


class AudiochatClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        direct_upload_bytes: int = DIRECT_UPLOAD_BYTES,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url
        self.direct_upload_bytes = direct_upload_bytes
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AudiochatClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> Any:
        if response.is_error:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.text}
            raise ApiError(response.status_code, problem)
        return response.json()

    def submit(
        self, audio: Path | None = None, question: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Create a job and return its record; a large file goes to the store directly."""
        fields = {k: str(v) for k, v in options.items() if v is not None}
        if audio is None:
            return self._check(self._http.post("/v1/jobs", json={"question": question, **options}))  # type: ignore[no-any-return]
        if audio.stat().st_size > self.direct_upload_bytes:
            upload = self.upload_direct(audio)
            if upload is not None:
                body = {"upload_ids": [upload["id"]], "question": question, **options}
                body = {k: v for k, v in body.items() if v is not None}
                return self._check(self._http.post("/v1/jobs", json=body))  # type: ignore[no-any-return]
        if question:
            fields["question"] = question
        with audio.open("rb") as handle:
            files = {"audio": (audio.name, handle, "application/octet-stream")}
            return self._check(self._http.post("/v1/jobs", data=fields, files=files))  # type: ignore[no-any-return]

    def upload_direct(self, audio: Path) -> dict[str, Any] | None:
        """Send a file to the store through a presigned form and return its upload; None if
        the server keeps audio where clients cannot send it (the local store)."""
        response = self._http.post(
            "/v1/uploads", json={"filename": audio.name, "bytes": audio.stat().st_size}
        )
        if response.status_code == 409 and "direct-upload-unavailable" in response.text:
            return None
        upload: dict[str, Any] = self._check(response)
        form = upload["upload"]
        # A client of its own: the API key is for audiochat, never for the store.
        with audio.open("rb") as handle, httpx.Client(timeout=self._http.timeout) as store:
            sent = store.post(
                form["url"], data=form["fields"], files={"file": (audio.name, handle)}
            )
        if sent.is_error:
            raise ApiError(
                sent.status_code, {"code": "store-refused", "detail": sent.text[:500] or "error"}
            )
        return upload

    def get(self, job_id: str) -> dict[str, Any]:
        """A job's record."""
        return self._check(self._http.get(f"/v1/jobs/{job_id}"))  # type: ignore[no-any-return]

    def list(self, limit: int = 20) -> list[dict[str, Any]]:
        """Recent jobs, newest first."""
        return self._check(self._http.get("/v1/jobs", params={"limit": limit}))  # type: ignore[no-any-return]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not ended; returns its record."""
        return self._check(self._http.post(f"/v1/jobs/{job_id}/cancel"))  # type: ignore[no-any-return]

    def rotate_webhook_secret(self) -> dict[str, Any]:
        """Make a new webhook signing secret; the answer is the only time it is shown."""
        return self._check(self._http.post("/v1/webhooks/secret"))  # type: ignore[no-any-return]

    def follow(self, job_id: str, retries: int = 5) -> Iterator[JobEvent]:
        """A job's events to `done`, reconnecting with Last-Event-ID if the stream drops."""
        last = 0
        failures = 0
        while True:
            headers = {"Last-Event-ID": str(last)} if last else {}
            try:
                with connect_sse(
                    self._http,
                    "GET",
                    f"/v1/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(30.0, read=60.0),
                ) as source:
                    if source.response.is_error:
                        source.response.read()
                        self._check(source.response)
                    for sse in source.iter_sse():
                        if sse.event not in _EVENT_NAMES:
                            continue  # a keep-alive comment, which httpx-sse reports as a message
                        event = JobEvent(
                            id=int(sse.id), event=EventName(sse.event), data=sse.json()
                        )
                        last = event.id
                        failures = 0
                        yield event
                        if event.event is EventName.DONE:
                            return
            except (httpx.TransportError, SSEError):
                failures += 1
                if failures > retries:
                    raise
                time.sleep(min(0.2 * 2**failures, 5.0))
