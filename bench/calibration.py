"""A server that streams tokens at known times: the measuring instrument the load client is
checked against (tests/unit/test_loadgen.py), not a stand-in for an engine.

    python -m bench.calibration --port 8000 --ttft 0.05 --itl 0.01 --tokens 32

POST /v1/completions with "stream": true answers OpenAI's server-sent events: a role-free first
event only after `ttft` seconds, then one token per event every `itl` seconds (each event says
its token id, as vLLM's return_token_ids does), a usage chunk when stream_options.include_usage
is asked, then [DONE]. Every request is served at once and on its own schedule (asyncio): TTFT =
ttft, ITL = itl, end-to-end = ttft + (tokens-1)*itl. Where many streams keep its own loop busy it
writes late; with --log it records, per request, when it arrived and when it wrote each event
(time.perf_counter: CLOCK_MONOTONIC, the clock the client reads), so the truth is known then too.

A request may ask for the departures real servers show, so the client's handling of each is
checked against a known truth (an object "calibration" in the request body):
tokens_per_event (several tokens in one event), ids: false (no token_ids), usage: false (no usage
chunk even when asked), stop_after N (end cleanly after N events, short of max_tokens),
cut_after N (drop the connection after N events), error_after N (an in-stream error event after
N events, then [DONE]).

A whole server may depart too (--depart, for the endpoint session's tests): no_models (no
/v1/models), no_usage (never a usage chunk), no_done (a stream ends without [DONE]), no_stream
(a streamed request is answered 400, as by a server that does not stream). A request
without "stream": true gets one JSON answer, as OpenAI's. With --key-env VAR, a request without
`Authorization: Bearer $VAR` is answered 401.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass

from aiohttp import web


def chunk(text: str, tokens: list[int] | None, finish: str | None = None) -> bytes:
    choice = {"index": 0, "text": text, "finish_reason": finish}
    if tokens is not None:
        choice["token_ids"] = tokens
    body = {"object": "text_completion", "model": "calibration", "choices": [choice]}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


ERROR_EVENT = (b'data: {"error": {"message": "calibration: the engine failed", '
               b'"type": "server_error"}}\n\n')


DEPARTURES = ("no_models", "no_usage", "no_done", "no_stream")


@dataclass
class Calibration:
    """The server's behaviour: `ttft` to the first event, `itl` between events (each at its own
    time from the request's start, so delays never accumulate), `tokens` unless max_tokens says;
    `depart`: the departures from the API it makes (DEPARTURES); `key`: the API key it asks for;
    `log`: a JSON line per request (arrival, each write) for the load client's calibration."""

    ttft: float
    itl: float
    tokens: int
    log: str | None = None
    depart: tuple[str, ...] = ()
    key: str = ""

    @web.middleware
    async def keyed(self, request: web.Request, handler):
        if self.key and request.headers.get("Authorization") != f"Bearer {self.key}":
            return web.json_response({"error": {"message": "no valid key", "type": "auth"}},
                                     status=401)
        return await handler(request)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        arrived = time.perf_counter()
        body = await request.json()
        count = int(body.get("max_tokens") or self.tokens)
        if body.get("stream") and "no_stream" in self.depart:
            return web.json_response({"error": {"message": "streaming is not supported",
                                                "type": "invalid_request_error"}}, status=400)
        if not body.get("stream"):
            return self.whole(count)
        knobs = {**(body.get("calibration") or {}),
                 **({"usage": False} if "no_usage" in self.depart else {})}
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        writes: list[float] = []
        sent = await self.events(request, response, count, knobs, writes)
        if sent is None:  # cut, or an error event sent
            return response
        await self.finish(response, body, knobs, sent)
        if self.log:
            with open(self.log, "a", encoding="utf-8") as out:
                out.write(json.dumps({"arrived": arrived, "writes": writes}) + "\n")
        return response

    def whole(self, count: int) -> web.Response:
        usage = {"prompt_tokens": 1, "completion_tokens": count, "total_tokens": count + 1}
        choice = {"index": 0, "text": " t" * count, "finish_reason": "length"}
        return web.json_response({"object": "text_completion", "model": "calibration",
                                  "choices": [choice],
                                  **({} if "no_usage" in self.depart else {"usage": usage})})

    async def events(self, request: web.Request, response: web.StreamResponse, count: int,
                     knobs: dict, writes: list[float]) -> int | None:
        """The stream's events; the tokens sent, or None where the stream was cut or failed."""
        per = int(knobs.get("tokens_per_event", 1))
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        if knobs.get("empty_first"):  # an empty chunk at once, as a proxy's keep-alive is
            await response.write(chunk("", None))
        for i, first in enumerate(range(0, count, per)):
            if i == knobs.get("cut_after"):
                request.transport.close()  # the connection drops mid-stream
                return None
            if i == knobs.get("error_after"):
                await response.write(ERROR_EVENT + b"data: [DONE]\n\n")
                return None
            if i == knobs.get("stop_after"):
                break
            await asyncio.sleep(max(0.0, start + self.ttft + i * self.itl - loop.time()))
            n = min(per, count - first)
            ids = [100 + (first + k) % 50 for k in range(n)] if knobs.get("ids", True) else None
            await response.write(chunk(" t" * n, ids, "length" if first + n == count else None))
            writes.append(time.perf_counter())
            sent += n
        return sent

    async def finish(self, response: web.StreamResponse, body: dict, knobs: dict, sent: int) -> None:
        """The usage event where asked for, and [DONE] unless the server departs from it."""
        if (body.get("stream_options") or {}).get("include_usage") and knobs.get("usage", True):
            usage = {"prompt_tokens": 1, "completion_tokens": sent, "total_tokens": sent + 1}
            await response.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode()
                                 + b"\n\n")
        if "no_done" not in self.depart:
            await response.write(b"data: [DONE]\n\n")

    @staticmethod
    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "calibration"}]})


def app(ttft: float, itl: float, tokens: int, log: str | None = None, *,
        depart: tuple[str, ...] = (), key: str = "") -> web.Application:
    server = Calibration(ttft, itl, tokens, log, depart, key)
    application = web.Application(middlewares=[server.keyed] if key else [])
    application.router.add_post("/v1/completions", server.completions)
    if "no_models" not in depart:
        application.router.add_get("/v1/models", server.models)
    return application


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calibration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ttft", type=float, default=0.05, help="seconds to the first token")
    parser.add_argument("--itl", type=float, default=0.01, help="seconds between tokens")
    parser.add_argument("--tokens", type=int, default=32, help="tokens when max_tokens is not given")
    parser.add_argument("--log", help="append each request's arrival and write times here (JSON lines)")
    parser.add_argument("--depart", default="", help=f"comma-separated: {', '.join(DEPARTURES)}")
    parser.add_argument("--key-env", default="", metavar="VAR",
                        help="answer 401 unless the request carries this variable's key")
    args = parser.parse_args(argv)
    depart = tuple(d for d in args.depart.split(",") if d)
    for d in depart:
        if d not in DEPARTURES:
            parser.error(f"--depart {d!r} is not one of {', '.join(DEPARTURES)}")
    key = os.environ.get(args.key_env, "") if args.key_env else ""
    if args.key_env and not key:
        parser.error(f"--key-env {args.key_env}: that variable is not set")
    web.run_app(app(args.ttft, args.itl, args.tokens, args.log, depart=depart, key=key), host="127.0.0.1",
                port=args.port, print=None, backlog=1024)


if __name__ == "__main__":
    main()
