"""The load generator: streamed completions against a server, in one process on asyncio, timed
as each server-sent event arrives.

A closed loop keeps `concurrency` users busy, each sending its next request when its last one
ended. An open loop sends on a schedule fixed before the run (constant rate, or Poisson arrivals
from a seed), optionally capped at `concurrency` requests in flight: a request that waits for a
free slot, or for a late event loop, waits *after* its scheduled time, and its latencies are
also measured from that time (dispatch delay = sent − scheduled), so queueing in the client is
never hidden (no coordinated omission). Events are read byte by byte (engines/http.SseParser) and
each is stamped with a monotonic clock when it completes.

The client is aiohttp: against the calibration server (64 events per request, 8 in flight) it
spent 0.8 ms of CPU per streamed request where httpx's AsyncClient spent 2.6-3.4 ms. It keeps
connections alive, as clients do, except against a server that closes them after a streamed
answer although its headers promise keep-alive (llama-server; the API-surface property
`keep_alive` finds it): aiohttp reuses a pooled connection without checking it, and failed every
second request there ("Can not write request body"), so each request gets a connection of its
own (`reuse_connections=False`; its TTFT then includes the connect, on loopback well under a ms
alone, 7 ms with 16 users connecting at once against the calibration server).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from core.errors import InfermatrixError, unknown
from engines.http.wire import DONE, InvalidResponse, SseParser

MODES = ("closed", "constant", "poisson")
LAG_TICK_S = 0.005  # how often the loop-lag probe asks to be woken
MIN_DURATION_S = 1.0
STEADY_WINDOW_S = 60.0
"""A published closed-loop point is a steady state: a window at least this long (the default) ..."""
STEADY_PER_USER = 10
"""... holding at least this many requests a user (the window grows until it does). A shorter
point (a test's) is measured the same way and marked: not a steady state (bench/serving)."""


class LoadError(InfermatrixError, ValueError):
    """A load description that cannot be run, naming the bad value."""


@dataclass(frozen=True)
class Load:
    """How a run loads the server."""

    mode: str = "closed"
    """"closed" (fixed users), "constant" or "poisson" (open loop at `rate`)."""
    concurrency: int = 1
    """closed: users; open: the most requests in flight (0: no cap)."""
    rate: float = 0.0
    """open loop: requests per second."""
    duration_s: float = STEADY_WINDOW_S
    """The measurement window, after the warm-up."""
    warmup_s: float = 2.0
    """Requests scheduled before this are sent but not counted."""
    min_requests: int = 20
    """The window is extended until this many requests were scheduled in it (a closed loop:
    and `per_user` a user)."""
    per_user: int = STEADY_PER_USER
    seed: int = 0
    """Seed of the Poisson schedule."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LoadError(unknown("load mode", self.mode, MODES))
        if self.mode == "closed" and self.concurrency < 1:
            raise LoadError(f"a closed loop needs concurrency >= 1, got {self.concurrency}")
        if self.mode != "closed" and not self.rate > 0:
            raise LoadError(f"an open loop ({self.mode}) needs a rate > 0 requests/s, got {self.rate}")
        if self.concurrency < 0 or self.warmup_s < 0 or self.min_requests < 1 or self.per_user < 1:
            raise LoadError("concurrency >= 0, warmup_s >= 0, min_requests >= 1 and per_user >= 1 "
                            f"are needed, got {self}")
        if self.duration_s < MIN_DURATION_S:
            raise LoadError(f"duration_s {self.duration_s:g} is too short for latency percentiles: "
                            f"give at least {MIN_DURATION_S:g} s (and min_requests for the tail)")

    @property
    def needed(self) -> int:
        """The requests the window must hold: min_requests, and a closed loop's per_user each."""
        return max(self.min_requests, self.per_user * self.concurrency if self.mode == "closed" else 0)

    @property
    def label(self) -> str:
        return (f"{self.concurrency} users" if self.mode == "closed"
                else f"{self.rate:g} req/s {self.mode}" + (f" (cap {self.concurrency})"
                                                           if self.concurrency else ""))


@dataclass
class Sample:
    """One request, every time on the run's monotonic clock (seconds from its start)."""

    scheduled: float
    sent: float = 0.0
    end: float = 0.0
    events: list[float] = field(default_factory=list)
    """When each event carrying generated content completed."""
    tokens: list[int | None] = field(default_factory=list)
    """Tokens each of those events carried, where the server says (token_ids); else None."""
    text: str = ""
    usage_tokens: int | None = None
    """completion_tokens of the usage chunk, if one came."""
    finish_reason: str | None = None
    """The finish_reason the stream ended with ("length", "stop"), None where none came."""
    error: str = ""
    user: int | None = None
    """A closed loop: which user sent it (their requests follow each other back to back)."""

    @property
    def ok(self) -> bool:
        return not self.error and bool(self.events)


@dataclass
class Run:
    """What one load run saw: every request, the loop's lateness, the client's CPU time."""

    load: Load
    samples: list[Sample]
    window: tuple[float, float]
    """[start, end) of the measurement window: requests scheduled inside it count, and they are
    the one set every figure of the point is made of (bench/serving.measure)."""
    wall_s: float
    cpu_s: float
    lag_s: list[float]

    @property
    def counted(self) -> list[Sample]:
        start, end = self.window
        return [s for s in self.samples if start <= s.scheduled < end]


def schedule(load: Load) -> list[float]:
    """Open loop: every send time (seconds from the start), fixed before the run."""
    count = max(load.min_requests + math.ceil(load.rate * load.warmup_s),
                math.ceil(load.rate * (load.warmup_s + load.duration_s)))
    rng = random.Random(load.seed)
    times, t = [], 0.0
    for _ in range(count):
        times.append(t)
        t += rng.expovariate(load.rate) if load.mode == "poisson" else 1 / load.rate
    return times


async def stream_one(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                     sample: Sample, clock: Callable[[], float]) -> None:
    """Send one streamed request and stamp its events into `sample`."""
    sample.sent = clock()
    try:
        async with session.post(url, json={**body, "stream": True}) as response:
            if response.status != 200:
                sample.error = f"HTTP {response.status}: {(await response.text())[:200]}"
                return
            parser, pieces = SseParser(), []
            async for chunk in response.content.iter_any():
                now = clock()
                for event in parser.feed(chunk):
                    if event.data != DONE and not sample.error:
                        read_event(event.json(), now, sample, pieces)
            sample.text = "".join(pieces)
    except (aiohttp.ClientError, InvalidResponse, TimeoutError) as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    finally:
        sample.end = clock()


def read_event(data: dict[str, Any], now: float, sample: Sample, pieces: list[str]) -> None:
    """One event's content and token count (completions or chat form), and usage if it has it.
    An error object inside the stream (`{"error": ...}`, or vLLM's `"object": "error"`) fails
    the request, however many tokens came before it."""
    if data.get("error") or data.get("object") == "error":
        found = data.get("error") or data
        message = found.get("message", found) if isinstance(found, dict) else found
        sample.error = f"InStreamError: {str(message)[:200]}"
        return
    if data.get("usage"):
        sample.usage_tokens = data["usage"].get("completion_tokens")
    for choice in data.get("choices") or []:
        sample.finish_reason = choice.get("finish_reason") or sample.finish_reason
        text = choice.get("text")
        if text is None:
            text = (choice.get("delta") or {}).get("content") or ""
        ids = choice.get("token_ids")
        # An event with no text is a token only where the server says so (its ids, or a token's
        # logprobs): an empty chunk sent at once (a role delta, a keep-alive, a proxy's) must not
        # start the TTFT clock, so TTFT runs to the first content.
        if text or ids or choice.get("logprobs"):
            sample.events.append(now)
            sample.tokens.append(len(ids) if ids is not None else None)
            pieces.append(text)


async def probe_lag(clock: Callable[[], float], lags: list[float], stop: asyncio.Event) -> None:
    """How late the event loop wakes a task that asked to sleep LAG_TICK_S."""
    while not stop.is_set():
        asked = clock() + LAG_TICK_S
        await asyncio.sleep(LAG_TICK_S)
        lags.append(max(0.0, clock() - asked))


@dataclass
class Client:
    """What the loops share: the session, the route, the request maker, the clock, the samples."""

    session: aiohttp.ClientSession
    url: str
    make_body: Callable[[int], dict[str, Any]]
    clock: Callable[[], float]
    samples: list[Sample] = field(default_factory=list)

    async def send(self, i: int, sample: Sample) -> None:
        await stream_one(self.session, self.url, self.make_body(i), sample, self.clock)


async def run_load(url: str, make_body: Callable[[int], dict[str, Any]], load: Load,
                   headers: dict[str, str] | None = None, reuse_connections: bool = True) -> Run:
    """Run `load` against `url` (a streamed /v1/completions or /v1/chat/completions);
    make_body(i) gives the i-th request's JSON; `headers` go with every request (a key)."""
    origin = time.perf_counter()
    clock = lambda: time.perf_counter() - origin  # noqa: E731
    lags: list[float] = []
    stop = asyncio.Event()
    cpu = time.process_time()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    connector = aiohttp.TCPConnector(limit=0, force_close=not reuse_connections)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=timeout, headers=headers) as session:
        client = Client(session, url, make_body, clock)
        lag_task = asyncio.create_task(probe_lag(clock, lags, stop))
        start = clock()
        window = (start + load.warmup_s, start + load.warmup_s + load.duration_s)
        if load.mode == "closed":
            window = await closed_loop(client, load, window)
        else:
            await open_loop(client, load, start)
            window = (window[0], max(window[1], client.samples[-1].scheduled + 1e-9))
        stop.set()
        await lag_task
    return Run(load, client.samples, window, clock() - start, time.process_time() - cpu, lags)


async def closed_loop(client: Client, load: Load, window: tuple[float, float]) -> tuple[float, float]:
    """`concurrency` users, each sending as soon as its last request ended (its scheduled time),
    until the window has passed holding `load.needed` requests (else it is stretched); the
    window. Warm-up and drain lie outside it: the users keep the load on, uncounted, until the
    window's last request has ended, so that it ends under the same load as the others."""
    begin, end = window
    numbers = itertools.count()

    def in_window() -> list[Sample]:
        return [s for s in client.samples if begin <= s.scheduled < end]

    async def user(number: int) -> None:
        nonlocal end
        while True:
            now = client.clock()
            if now >= end:
                counted = in_window()
                if len(counted) >= load.needed:
                    if all(s.end for s in counted):
                        return  # the window's last request has ended: the drain is over
                else:
                    end = now + 1e-3  # short of requests: the window grows to take this one
            sample = Sample(scheduled=now, user=number)
            client.samples.append(sample)
            await client.send(next(numbers), sample)

    await asyncio.gather(*(user(n) for n in range(load.concurrency)))
    return begin, end


async def open_loop(client: Client, load: Load, start: float) -> None:
    """Send on the fixed schedule; with a cap, a request waits for a slot after its time."""
    slots = asyncio.Semaphore(load.concurrency or 10**9)

    async def one(i: int, sample: Sample) -> None:
        async with slots:
            await client.send(i, sample)

    tasks = []
    for i, offset in enumerate(schedule(load)):
        sample = Sample(scheduled=start + offset)
        client.samples.append(sample)
        await asyncio.sleep(max(0.0, sample.scheduled - client.clock()))
        tasks.append(asyncio.create_task(one(i, sample)))
    await asyncio.gather(*tasks)
