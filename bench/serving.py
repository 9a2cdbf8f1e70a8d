"""What a load run measured (bench/loadgen.py): the serving metrics of bench/metrics.py from its raw
request times, goodput against SLOs, token counts checked both ways, and whether the client
could keep up (a figure never stands without that).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.loadgen import STEADY_PER_USER, STEADY_WINDOW_S, Run, Sample
from bench.metrics import record
from bench.stats import percentile
from core.bench_details import LITTLE_SLACK, LoadRun, LoadSpec, MetricRecord, TokenCounts
from core.errors import InfermatrixError

MIN_ACHIEVED = 0.95
"""An open loop that sent on time less than this share of what its schedule asked is not at
that rate."""
ON_TIME_S = 0.05
"""A request sent later than this after its scheduled time was not sent on schedule (a full
--cap, a client that cannot keep up)."""
MAX_ERROR_SHARE = 0.01
"""A load level where more than this share of the requests failed is not a valid point."""
MAX_LAG_P99_S = 0.02
"""The client's event loop woke tasks later than this (p99): its clock readings are late."""
MAX_CLIENT_CPU = 0.8
"""The client used more than this share of a core: it may be the bottleneck."""
SLO_KEYS = ("ttft", "tpot", "e2e")
UNITS = {"s": 1.0, "ms": 1e-3}
DEFAULT_SLOS = "ttft=1s,tpot=100ms"
"""What goodput counts when no SLO is given: the first token within a second, then 10 tok/s."""


class SloError(InfermatrixError, ValueError):
    """An SLO that is not NAME=SECONDS with a known name."""


def parse_slos(text: str) -> dict[str, float]:
    """"ttft=0.5,tpot=50ms,e2e=5s" -> {"ttft": 0.5, "tpot": 0.05, "e2e": 5.0}: seconds (a bare
    number, or with s or ms), each > 0."""
    slos = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in SLO_KEYS:
            raise SloError(f"unknown SLO {name!r} in {text!r}; valid: {', '.join(SLO_KEYS)} "
                           "(e.g. ttft=500ms,tpot=0.05)")
        match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-z]*)\s*", value)
        if match is None:
            raise SloError(f"SLO {name} needs a time (e.g. 0.5, 500ms), got {value!r}")
        number, unit = match.group(1), match.group(2) or "s"
        if unit not in UNITS:
            raise SloError(f"SLO {name}: unit {unit!r} in {value!r}; valid: s, ms")
        try:
            slos[name] = float(number) * UNITS[unit]
        except ValueError:
            raise SloError(f"SLO {name} needs a time (e.g. 0.5, 500ms), got {value!r}") from None
        if slos[name] <= 0:
            raise SloError(f"SLO {name} must be > 0, got {value}")
    return slos


@dataclass(frozen=True)
class Times:
    """One request's figures, the SLOs read from them."""

    ttft: float
    tpot: float | None
    e2e: float


def tokens_of(sample: Sample, count_tokens: Callable[[str], int] | None,
              asked: int | None = None) -> tuple[int | None, str]:
    """A request's output tokens from the truth, and where they came from: the server's usage,
    else the ids its events carry, else, where exactly `asked` tokens were asked with EOS off and
    the stream ended at that length (finish_reason "length"), the count asked; else the client
    re-tokenizing the whole text once (which can merge the sampled tokens into fewer); (None,
    "none") where there is none of them. Never the number of events: a server may send several
    tokens in one event (llama_cpp.server sends about 24 events for 32 tokens)."""
    if sample.usage_tokens is not None:
        return sample.usage_tokens, "usage"
    if sample.tokens and all(t is not None for t in sample.tokens):
        return sum(sample.tokens), "ids"
    if asked and sample.finish_reason == "length":
        return asked, "asked"
    if count_tokens is not None:
        return count_tokens(sample.text), "client"
    return None, "none"


def times_of(sample: Sample, tokens: int | None, *, from_schedule: bool = False) -> Times:
    """TTFT and end-to-end from the request's send, or from its scheduled send time (client
    queueing included); TPOT from its first event to its last over its `tokens` (true count)."""
    tpot = ((sample.events[-1] - sample.events[0]) / (tokens - 1)
            if tokens is not None and tokens > 1 else None)
    start = sample.scheduled if from_schedule else sample.sent
    return Times(sample.events[0] - start, tpot, sample.end - start)


def meets(sample: Sample, tokens: int | None, slos: dict[str, float]) -> bool:
    """Whether the request met every SLO, its TTFT and end-to-end counted from its scheduled
    send: a request that waited in the client for a free slot waited for the user too."""
    if not sample.ok:
        return False
    times = times_of(sample, tokens, from_schedule=True)
    return all(getattr(times, name) is None or getattr(times, name) <= limit
               for name, limit in slos.items())


def token_gaps(sample: Sample) -> tuple[list[float], list[float]]:
    """Per-token ITL where events say their tokens; per-event gaps where they do not."""
    itl, gaps = [], []
    for before, after, tokens in zip(sample.events, sample.events[1:], sample.tokens[1:]):
        if tokens:
            itl += [(after - before) / tokens] * tokens
        else:
            gaps.append(after - before)
    return itl, gaps


EXACT = ("usage", "ids")
"""Token counts that are the server's own; re-tokenizing the text can merge the generated
tokens differently (a BPE tokenizer's canonical split is not the sampled one), so it cannot
tell a short stream from a whole one."""


def judge_streams(run: Run, truth: dict[int, tuple[int | None, str]], expected: int | None) -> None:
    """With EOS off every request must give the `expected` tokens: a stream that ended cleanly
    short of them by the server's own count, or, where the server gives no count, without
    finish_reason "length" (an event count or the text re-tokenized can only under-count, so
    neither can show it whole), failed: an error of kind Truncated, never a success."""
    for sample in run.samples:
        tokens, source = truth.get(id(sample), (None, ""))
        if not (sample.ok and expected):
            continue
        if source in EXACT and tokens < expected:
            sample.error = f"Truncated: {tokens} of the {expected} tokens asked"
        elif source not in EXACT and sample.finish_reason != "length":
            sample.error = (f"Truncated: ended ({sample.finish_reason or 'no finish_reason'}) "
                            f"without reaching the {expected} tokens asked, and the server "
                            "gave no count")


def measure(run: Run, slos: dict[str, float] | None = None,
            count_tokens: Callable[[str], int] | None = None,
            expected_tokens: int | None = None) -> LoadRun:
    """Every metric of the run (raw samples kept), goodput, token counts, validity: the typed
    record (core/bench_details.LoadRun). Failed streams (HTTP errors, dropped connections,
    in-stream errors, streams short of `expected_tokens`) are counted by kind and enter no
    latency, throughput or goodput figure."""
    slos = slos or {}
    truth = {id(s): tokens_of(s, count_tokens, expected_tokens) for s in run.samples if s.ok}
    judge_streams(run, truth, expected_tokens)
    counted = run.counted
    good = [s for s in counted if s.ok]
    span = served_span(run, good)
    metrics, met = metrics_of(run, truth, slos, span)
    valid = validity(run)
    unsteady = steady_state(run, good, span)
    return LoadRun(
        load=LoadSpec(**dataclasses.asdict(run.load)), metrics=metrics, requests=len(counted),
        errors=len(counted) - len(good), errors_by_kind=errors_by_kind(counted),
        error_examples=sorted({s.error for s in counted if s.error})[:3],
        window_s=run.window[1] - run.window[0], slos=slos,
        slo_attainment=met / len(counted) if counted else 0.0,
        tokens=token_counts(good, truth, count_tokens), **valid,
        steady=not unsteady if run.load.mode == "closed" else None, unsteady_because=unsteady)


def steady_state(run: Run, good: list[Sample], span: float) -> list[str]:
    """Why a closed-loop point is not a steady state ([] where it is, and for an open loop): its
    window is shorter than STEADY_WINDOW_S, it holds fewer than STEADY_PER_USER requests a user,
    or its users held more requests in flight than there are users (Little's law: req/s × mean
    end-to-end ≤ users, both of the window's one set of requests, over its `span`)."""
    if run.load.mode != "closed":
        return []
    users = run.load.concurrency
    window = run.window[1] - run.window[0]
    reasons = []
    if window < STEADY_WINDOW_S:
        reasons.append(f"a window of {window:.0f} s, short of {STEADY_WINDOW_S:.0f} s")
    if len(good) < STEADY_PER_USER * users:
        reasons.append(f"{len(good) / users:.1f} requests a user, short of {STEADY_PER_USER}")
    if good:
        in_flight = len(good) / span * sum(s.end - s.sent for s in good) / len(good)
        if in_flight > users * LITTLE_SLACK:
            reasons.append(f"req/s × mean end-to-end = {in_flight:.2f} > {users} users (Little's law)")
    return reasons


def metrics_of(run: Run, truth: dict[int, tuple[int | None, str]],
               slos: dict[str, float], span: float) -> tuple[list[MetricRecord], int]:
    """The run's latency, throughput and goodput metrics, the rates over `span`
    (served_span), and how many requests met every SLO."""
    counted = run.counted
    good = [s for s in counted if s.ok]
    metrics: list[MetricRecord] = []

    def add(name: str, values: list[float]) -> None:
        if values:
            metrics.append(record(name, values, load=run.load.label))

    add("serve_ttft_s", [s.events[0] - s.sent for s in good])
    add("serve_ttft_scheduled_s", [s.events[0] - s.scheduled for s in good])
    add("serve_e2e_s", [s.end - s.sent for s in good])
    add("serve_e2e_scheduled_s", [s.end - s.scheduled for s in good])
    add("serve_dispatch_delay_s", [s.sent - s.scheduled for s in counted])
    add("serve_tpot_s", [t for t in (times_of(s, truth[id(s)][0]).tpot for s in good)
                         if t is not None])
    gaps = [token_gaps(sample) for sample in good]
    add("serve_itl_s", [g for itl, _ in gaps for g in itl])
    add("serve_event_gap_s", [g for _, events in gaps for g in events])
    # one set of requests for every figure: the window's, whose latencies are averaged above
    add("serve_requests_per_s", [len(good) / span])
    known = [truth[id(s)][0] for s in good if truth[id(s)][0] is not None]
    if known:
        add("serve_output_tokens_per_s", [sum(known) / span])
    # goodput counts the requests req/s counts that met every SLO, so it can never exceed req/s
    add("serve_goodput_per_s", [sum(meets(s, truth[id(s)][0], slos) for s in good) / span])
    return metrics, sum(meets(s, truth.get(id(s), (None, ""))[0], slos) for s in counted)


def served_span(run: Run, good: list[Sample]) -> float:
    """The seconds the point's rates divide by, for its one set of requests (those sent in the
    window).

    A closed loop: the mean over its users of the time their own requests of the set took, from
    the first one's send to the last one's end. A user sends back to back, so its requests
    fill that time, and count ÷ span × mean end-to-end is the users in flight exactly (Little's
    law), whatever the phase of the users' requests against the window's edges: users of a
    batching server end together, and a window that cut them at the wrong moment counted a
    request a user too many (4.6 in flight at 4 users, 10 s windows, 2.3 s requests).

    An open loop: from the set's first completion to its last, at least the window: a server
    that keeps up completes them as fast as they were sent, one that falls behind takes longer,
    and the rate says so."""
    start, end = run.window
    if not good:
        return end - start
    if run.load.mode == "closed":
        users: dict[int | None, list[Sample]] = {}
        for sample in good:
            users.setdefault(sample.user, []).append(sample)
        if None in users:  # samples not made by the closed loop (older callers): the window
            return end - start
        spans = [max(s.end for s in mine) - min(s.sent for s in mine) for mine in users.values()]
        return sum(spans) / len(spans)
    ends = sorted(s.end for s in good)
    return max(end - start, ends[-1] - ends[0])


def token_counts(good: list[Sample], truth: dict[int, tuple[int | None, str]],
                 count_tokens: Callable[[str], int] | None) -> TokenCounts:
    """Where the token counts came from, events per token by them, and the server's usage
    against the client re-tokenizing each whole text."""
    known = [(s, truth[id(s)][0]) for s in good if truth[id(s)][0] is not None]
    sources = sorted({truth[id(s)][1] for s, _ in known})
    usage = [s.usage_tokens for s in good if s.usage_tokens is not None]
    out = TokenCounts(usage_reported=len(usage), requests=len(good), source="+".join(sources),
                      unknown=len(good) - len(known))
    if sum(n for _, n in known):
        out.events_per_token = sum(len(s.events) for s, _ in known) / sum(n for _, n in known)
    if count_tokens is not None:
        client = [count_tokens(s.text) for s in good]
        mismatched = [[s.usage_tokens, c] for s, c in zip(good, client)
                      if s.usage_tokens is not None and s.usage_tokens != c]
        out.client_total, out.usage_total = sum(client), sum(usage)
        out.mismatched, out.mismatch_examples = len(mismatched), mismatched[:3]
    return out


def validity(run: Run) -> dict[str, Any]:
    """Whether the run is a valid point: at most MAX_ERROR_SHARE of its streams failed, and the
    client kept up (the open loop's rate, event-loop lag, its own CPU); reasons if not.

    An open loop's achieved rate (requests of the window sent within ON_TIME_S of their
    scheduled time ÷ its length) is held to its schedule's own rate inside the window, not to
    the nominal rate: a Poisson schedule of a given seed runs faster or slower than nominal over
    a short window, and no server can beat its schedule. A slow server does not make the run
    invalid (its latency shows it); a client that sends late does.
    """
    lag_p99 = percentile(run.lag_s, 99) if run.lag_s else 0.0
    cpu = run.cpu_s / run.wall_s if run.wall_s else 0.0
    start, end = run.window
    span = end - start if end > start else float("inf")
    counted = run.counted
    scheduled = len(counted) / span
    achieved = sum(s.sent - s.scheduled <= ON_TIME_S for s in counted) / span
    reasons = []
    failed = [s for s in counted if not s.ok]
    if counted and len(failed) > MAX_ERROR_SHARE * len(counted):
        kinds = ", ".join(f"{n} {kind}" for kind, n in errors_by_kind(failed).items())
        reasons.append(f"{len(failed)} of {len(counted)} streams failed ({kinds})")
    if run.load.mode != "closed" and achieved < MIN_ACHIEVED * scheduled:
        reasons.append(f"achieved {achieved:.2f} req/s sent on time of the {scheduled:.2f} its "
                       f"schedule asked in the window ({run.load.rate:g} nominal)")
    if lag_p99 > MAX_LAG_P99_S:
        reasons.append(f"the client's event loop lagged {lag_p99 * 1e3:.0f} ms (p99)")
    if cpu > MAX_CLIENT_CPU:
        reasons.append(f"the client used {cpu:.0%} of a core")
    closed = run.load.mode == "closed"
    return {"achieved_rate": 0.0 if closed else achieved, "target_rate": 0.0 if closed else scheduled,
            "loop_lag_p99_s": lag_p99,
            "client_cpu": cpu, "valid": not reasons, "invalid_because": reasons}


def errors_by_kind(samples: list[Sample]) -> dict[str, int]:
    """Failed requests per status code or exception type ("HTTP 500", "ServerDisconnectedError")."""
    kinds: dict[str, int] = {}
    for sample in samples:
        if sample.error or not sample.events:
            kind = sample.error.split(":", 1)[0] if sample.error else "no content"
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds
