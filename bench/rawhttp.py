"""A small HTTP/1.1 client on asyncio streams: just what the gateway needs, cheap enough per
request that thousands of SSE clients in one process measure the gateway, not the client.

One connection per request (`Connection: close`); bodies by Content-Length, chunked, or to EOF.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class SseEvent:
    event: str
    id: str
    data: str
    received: float  # time.perf_counter() when the bytes carrying it were read
    wall: float  # time.time() at the same moment, to compare with another process's clock


def _request_bytes(
    host: str, port: int, method: str, path: str, body: bytes, headers: dict[str, str]
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0], 16)
        if size == 0:
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


async def request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Response:
    """Send one request and read the whole response."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(_request_bytes(host, port, method, path, body, headers or {}))
        await writer.drain()
        status, response_headers = await _read_head(reader)
        if "content-length" in response_headers:
            data = await reader.readexactly(int(response_headers["content-length"]))
        elif response_headers.get("transfer-encoding", "").lower() == "chunked":
            data = b"".join([chunk async for chunk in _chunks(reader)])
        else:
            data = await reader.read()
        return Response(status, response_headers, data)
    finally:
        writer.close()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, (filename, content) in files.items():
        parts.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class SseClient:
    """One open `GET …/events` stream; iterate it for events until the server closes it."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self._host, self._port, self._path = host, port, path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.status = 0

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._writer.write(
            _request_bytes(
                self._host, self._port, "GET", self._path, b"", {"Accept": "text/event-stream"}
            )
        )
        await self._writer.drain()
        self.status, headers = await _read_head(self._reader)
        if self.status != 200:
            raise RuntimeError(f"GET {self._path}: HTTP {self.status}")
        if headers.get("transfer-encoding", "").lower() != "chunked":
            raise RuntimeError("expected a chunked event stream")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def events(self) -> AsyncIterator[SseEvent]:
        assert self._reader is not None
        buffer = ""
        async for chunk in _chunks(self._reader):
            received, wall = time.perf_counter(), time.time()
            buffer += chunk.decode().replace("\r\n", "\n")
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                event, event_id, data = "message", "", []
                for line in block.split("\n"):
                    if line.startswith(":"):
                        continue
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "id":
                        event_id = value
                    elif name == "data":
                        data.append(value)
                if data or event != "message":
                    yield SseEvent(event, event_id, "\n".join(data), received, wall)
