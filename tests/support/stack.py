"""A running audiochat stack (gateway + workers) and the client calls tests make on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from httpx_sse import connect_sse

from testbed.processes import Gateway, Worker


@dataclass
class SseEvent:
    id: int
    event: str
    data: dict[str, Any]


@dataclass
class Stack:
    gateway: Gateway
    workers: list[Worker]
    redis_url: str
    env: dict[str, str]
    workdir: Path
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.gateway.url, timeout=30)

    @property
    def url(self) -> str:
        return self.gateway.url

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def close(self) -> None:
        self.http.close()
        for worker in self.workers:
            worker.stop()
        self.gateway.stop()

    def submit_text(self, question: str, **options: Any) -> dict[str, Any]:
        response = self.http.post("/v1/jobs", json={"question": question, **options})
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    def submit_audio(self, path: Path, **fields: Any) -> dict[str, Any]:
        with path.open("rb") as handle:
            response = self.http.post(
                "/v1/jobs",
                data={k: str(v) for k, v in fields.items()},
                files={"audio": (path.name, handle, "application/octet-stream")},
            )
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    def events(
        self,
        job_id: str,
        *,
        last_event_id: int | None = None,
        query: bool = False,
        limit: int | None = None,
        timeout: float = 60,
    ) -> list[SseEvent]:
        """Follow a job's SSE stream until it closes (or `limit` events were read)."""
        headers: dict[str, str] = {}
        url = f"/v1/jobs/{job_id}/events"
        if last_event_id is not None:
            if query:
                url += f"?last_event_id={last_event_id}"
            else:
                headers["Last-Event-ID"] = str(last_event_id)
        events: list[SseEvent] = []
        with connect_sse(
            self.http, "GET", url, headers=headers, timeout=httpx.Timeout(timeout)
        ) as source:
            assert source.response.status_code == 200, source.response.read()
            for sse in source.iter_sse():
                if not sse.event or sse.event == "message":
                    continue
                events.append(SseEvent(int(sse.id), sse.event, sse.json()))
                if limit is not None and len(events) >= limit:
                    break
        return events

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def run(self, job: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """Follow a submitted job to its end and return its final record."""
        events = self.events(job["id"], timeout=timeout)
        assert events and events[-1].event == "done", events
        return self.job(job["id"])
