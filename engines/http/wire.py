"""The wire: JSON requests to an OpenAI-compatible server and its server-sent events, read byte
by byte, with errors that name what the server did wrong.

`sse_events` is the one SSE reader (the HTTP adapters and the API-surface suite use it): it
splits the byte stream on blank lines, joins an event's `data:` lines, and keeps what a
server sends that the format does not allow, so a suite can judge the framing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.errors import InfermatrixError

DONE = "[DONE]"
"""OpenAI's sentinel: the data of the last event of a stream."""
FIELDS = ("data", "event", "id", "retry")
"""The fields of the SSE format; any other line is not SSE."""


class ServerError(InfermatrixError, RuntimeError):
    """A server that did not start, stopped answering, or answered something unreadable."""


class InvalidResponse(ServerError):
    """A response that is not the JSON or the server-sent events the API promises."""


class ApiError(ServerError):
    """A 4xx or 5xx answer, with the server's own words."""

    def __init__(self, status: int, path: str, body: str) -> None:
        super().__init__(f"{path} answered HTTP {status}: {body[:300]}")
        self.status = status
        self.body = body


@dataclass
class SseEvent:
    """One server-sent event: its data (data: lines joined) and the lines that broke the format."""

    data: str
    fields: dict[str, str] = field(default_factory=dict)
    """The other fields it set (event:, id:, retry:)."""
    stray: list[str] = field(default_factory=list)
    """Lines that are neither an SSE field nor a comment."""

    def json(self) -> dict[str, Any]:
        """The event's data as a JSON object, or InvalidResponse naming what came instead."""
        try:
            value = json.loads(self.data)
        except json.JSONDecodeError as exc:
            raise InvalidResponse(f"an event's data is not JSON ({exc}): {self.data[:200]!r}") from None
        if not isinstance(value, dict):
            raise InvalidResponse(f"an event's data is not a JSON object: {self.data[:200]!r}")
        return value


class SseParser:
    """Server-sent events from bytes as they arrive: feed() each chunk, get the events it ends.

    Incremental, so a client can read the clock as each event completes (the load benchmark
    does); any chunking of the same bytes gives the same events."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self.buffer = (self.buffer + chunk).replace(b"\r\n", b"\n")  # CR and LF may come apart
        events = []
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            event = _event(block.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SseEvent]:
        """The event left unterminated when the body ended, if any."""
        block, self.buffer = self.buffer, b""
        event = _event(block.decode("utf-8", errors="replace")) if block.strip() else None
        return [event] if event is not None else []


def sse_events(chunks: Iterable[bytes]) -> Iterator[SseEvent]:
    """The events of a text/event-stream body, as its bytes arrive (any chunking)."""
    parser = SseParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
    yield from parser.close()


def _event(block: str) -> SseEvent | None:
    data: list[str] = []
    event = SseEvent("")
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue  # a comment (keep-alive)
        name, colon, value = line.partition(":")
        if not colon or name not in FIELDS:
            event.stray.append(line)
            continue
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            event.fields[name] = value
    if not data and not event.fields and not event.stray:
        return None
    event.data = "\n".join(data)
    return event


class OpenAIClient:
    """JSON over HTTP to one server at `origin` ("http://127.0.0.1:8000"), its OpenAI routes
    under `prefix` ("/v1"); a path that starts with "//" is taken from the origin instead."""

    def __init__(self, origin: str, prefix: str = "/v1", timeout: float = 120.0,
                 headers: dict[str, str] | None = None) -> None:
        self.origin = origin.rstrip("/")
        self.base = self.origin + prefix
        self.http = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def url(self, path: str) -> str:
        return self.origin + path[1:] if path.startswith("//") else self.base + path

    def get(self, path: str) -> dict[str, Any]:
        return self._json(path, self.http.get(self.url(path)))

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json(path, self.http.post(self.url(path), json=body))

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The JSON objects of a streamed answer, up to [DONE] or the end of the body (the
        API-surface suite, not the adapter, judges whether [DONE] came). Each stream on a
        connection of its own: a server that closes a connection after a stream although it
        promised keep-alive (llama-server; the API-surface property keep_alive says so) would
        otherwise fail the next request that reuses it."""
        with self.http.stream("POST", self.url(path), json={**body, "stream": True},
                              headers={"Connection": "close"}) as response:
            if response.status_code >= 400:
                raise ApiError(response.status_code, path, response.read().decode(errors="replace"))
            for event in sse_events(response.iter_bytes()):
                if event.data == DONE:
                    return
                yield event.json()

    @staticmethod
    def _json(path: str, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise ApiError(response.status_code, path, response.text)
        try:
            value = response.json()
        except ValueError:
            raise InvalidResponse(f"{path} answered no JSON: {response.text[:200]!r}") from None
        if not isinstance(value, dict):
            raise InvalidResponse(f"{path} answered JSON that is not an object: {response.text[:200]!r}")
        return value
