"""engines/http/wire.py: the SSE reader on any chunking, and the client's errors against a test
server of our own that answers what a broken server would (a measuring instrument, not a mock)."""

from __future__ import annotations

import http.server
import itertools
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engines.http.wire import DONE, ApiError, InvalidResponse, OpenAIClient, sse_events

STREAM = (b'data: {"choices": [{"text": "He"}]}\n\n'
          b": keep-alive\n\n"
          b'data: {"choices": [{"text": "llo"}]}\r\n\r\n'
          b"event: note\ndata: line one\ndata: line two\n\n"
          b"data: [DONE]\n\n")


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@given(cuts=st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_sse_events_do_not_depend_on_how_bytes_arrive(cuts: list[int]) -> None:
    events = list(sse_events(chunked(STREAM, cuts)))
    assert [e.data for e in events] == ['{"choices": [{"text": "He"}]}',
                                       '{"choices": [{"text": "llo"}]}',
                                       "line one\nline two", DONE]
    assert events[2].fields == {"event": "note"}
    assert events[0].json()["choices"][0]["text"] == "He"
    assert not any(e.stray for e in events)


def test_sse_keeps_what_breaks_the_format() -> None:
    events = list(sse_events([b'{"text": "no data: field"}\n\ndata: {not json}\n\n']))
    assert events[0].stray == ['{"text": "no data: field"}']
    with pytest.raises(InvalidResponse, match="not JSON"):
        events[1].json()
    with pytest.raises(InvalidResponse, match="not a JSON object"):
        next(iter(sse_events([b"data: [1, 2]\n\n"]))).json()


class Broken(http.server.BaseHTTPRequestHandler):
    """Answers by path: /v1/text (not JSON), /v1/fail (500 with a message), /v1/sse (garbage SSE)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, kind, body = {
            "/v1/text": (200, "text/html", b"<html>oops</html>"),
            "/v1/fail": (500, "application/json", b'{"error": {"message": "boom"}}'),
            "/v1/sse": (200, "text/event-stream", b"data: {half\n\n"),
        }[self.path]
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def broken_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_answers_that_are_not_json_or_sse_are_named(broken_server) -> None:
    client = OpenAIClient(broken_server)
    with pytest.raises(InvalidResponse, match="/text answered no JSON"):
        client.post("/text", {})
    with pytest.raises(ApiError, match="HTTP 500") as error:
        client.post("/fail", {})
    assert error.value.status == 500 and "boom" in error.value.body
    with pytest.raises(InvalidResponse, match="not JSON"):
        list(client.stream("/sse", {}))
    client.close()
