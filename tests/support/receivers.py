"""A real webhook receiver: an HTTP server on a loopback port, answering as each path is told.

Each path plays one part, chosen by its first segment:
  /ok/...            202
  /flaky-N/...       500 for the first N requests to the path, then 204
  /gone/...          410
  /busy/...          429 with `Retry-After: 0`
  /hang/...          never answers (the connection stays open until the client leaves)
  /hang-once/...     never answers the first request, 200 after that
  /redirect/...      302 to /ok/redirected
  /huge/...          200, then an endless body
Every request is recorded (path, headers, body) and waiters are woken, so tests wait for
requests instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """The server, the requests it got, and a way to wait for them."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._counts: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                receiver._record(Received(self.path, dict(self.headers.items()), body))
                receiver._answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def received(self, prefix: str) -> list[Received]:
        with self._changed:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def wait_for(self, prefix: str, count: int = 1, timeout: float = 30) -> list[Received]:
        """The requests to paths under `prefix`, once there are at least `count` of them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matching = [r for r in self.requests if r.path.startswith(prefix)]
                if len(matching) >= count:
                    return matching
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(matching)} of {count} requests to {prefix}")
                self._changed.wait(left)

    def _record(self, request: Received) -> None:
        with self._changed:
            self.requests.append(request)
            self._counts[request.path] += 1
            self._changed.notify_all()

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        part = handler.path.strip("/").split("/", 1)[0]
        seen = self._counts[handler.path]
        if part == "ok":
            self._reply(handler, 202)
        elif part.startswith("flaky-"):
            self._reply(handler, 500 if seen <= int(part.removeprefix("flaky-")) else 204)
        elif part == "gone":
            self._reply(handler, 410)
        elif part == "busy":
            self._reply(handler, 429, {"Retry-After": "0"})
        elif part == "hang" or (part == "hang-once" and seen == 1):
            self._closing.wait()
        elif part == "hang-once":
            self._reply(handler, 200)
        elif part == "redirect":
            self._reply(handler, 302, {"Location": self.url("/ok/redirected")})
        elif part == "huge":
            self._endless(handler)
        else:
            self._reply(handler, 404)

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str] | None = None
    ) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _endless(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.end_headers()
        chunk = b"x" * 65536
        try:
            while not self._closing.is_set():
                handler.wfile.write(chunk)
        except OSError:
            return  # the client hung up: what a sender that never reads the body does
