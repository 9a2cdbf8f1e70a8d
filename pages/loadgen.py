"""The "Under load" part of SERVING.md, from `nox -s serve-bench` (results/serve-bench/*.json):
per server, every load run with its latency percentiles (sample count, and a warning where the
count is too small for the percentile), throughput, goodput and whether the run is a valid point;
the knee of the closed-loop sweep; a plot; every definition."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

from bench.metrics import METRICS
from bench.stats import percentile, percentile_interval
from core.bench_details import (
    LITTLE_SLACK,
    SERVE_DISPATCH_DELAY_S,
    SERVE_E2E_S,
    SERVE_EVENT_GAP_S,
    SERVE_GOODPUT_PER_S,
    SERVE_ITL_S,
    SERVE_OUTPUT_TOKENS_PER_S,
    SERVE_REQUESTS_PER_S,
    SERVE_TPOT_S,
    SERVE_TTFT_S,
    SERVE_TTFT_SCHEDULED_S,
    LoadRun,
    ServeBenchDetail,
)
from core.results import load_results
from pages.markdown import CAVEAT, table
from pages.sources import cite

PERCENTILES = (50, 90, 95, 99)


def load_records(folder: Path | None) -> list[ServeBenchDetail]:
    """The serve-bench records in `folder` (none if it does not exist); unreadable ones skipped."""
    if folder is None or not folder.is_dir():
        return []
    results, _ = load_results(sorted(folder.glob("*.json")))
    records = []
    for result in results:
        rung = result.rung("serve_bench")
        if rung is not None and rung.detail is not None:
            rung.detail.source = result.source  # the file its figures are cited from
            records.append(rung.detail)
    return records


def spread(values: list[float], scale: float = 1e3,
           shown: Callable[[int], str] | None = None) -> str:
    """"p50 [its 95% interval] / p90 / p95 / p99 (n)" in ms; a percentile the count cannot
    support is marked. Two loads whose p50 intervals overlap cannot be told apart. `shown(q)`
    prints the q-th percentile where the page cites it (latency)."""
    if not values:
        return "–"
    parts = []
    for q in PERCENTILES:
        interval = percentile_interval(values, q)
        text = (shown(q) if shown else f"{percentile(values, q) * scale:.0f}") \
            + ("" if interval else "*")
        if q == 50 and interval:
            text += f" [{interval[0] * scale:.0f}–{interval[1] * scale:.0f}]"
        parts.append(text)
    return " / ".join(parts) + f" (n={len(values)})"


def latency(record: ServeBenchDetail | None, run: LoadRun, index: int, *names: str) -> str:
    """The first of `names` the run measured, its percentiles in ms, each cited (the audit
    recomputes them from the run's samples)."""
    metric = next((m for name in names for m in run.metrics if m.name == name and m.samples), None)
    if metric is None:
        return "–"
    return spread(metric.samples, shown=lambda q: cite(record, metric, f"p{q}", "ms:.0f",
                                                       load_run=index))


def median_of(run: LoadRun, name: str) -> float | None:
    values = run.samples(name)
    return percentile(values, 50) if values else None


def unsteady(run: LoadRun) -> str:
    """Why a closed-loop point is not a steady state ("" where it is): as its record judged it
    (bench/serving.steady_state), or, for a record older than that judgement, by Little's law
    alone. N users cannot hold more than N requests in flight, so req/s × mean end-to-end ≤ N;
    past it, the window counted requests that began before it (warm-up or drain inside it)."""
    if run.steady is not None:
        return f"not a steady state: {'; '.join(run.unsteady_because)}" if not run.steady else ""
    e2e = run.samples(SERVE_E2E_S)
    rate = median_of(run, SERVE_REQUESTS_PER_S)
    if run.load.mode != "closed" or not e2e or not rate:
        return ""
    in_flight = rate * sum(e2e) / len(e2e)
    if in_flight <= run.load.concurrency * LITTLE_SLACK:
        return ""
    return (f"not a steady state: req/s × mean end-to-end = {in_flight:.2f} > "
            f"{run.load.concurrency} users (Little's law)")


def cited(record: ServeBenchDetail | None, run: LoadRun, index: int, name: str, spec: str
          ) -> str:
    """The run's median of `name` as the page prints it, cited (pages/sources.py)."""
    metric = next((m for m in run.metrics if m.name == name and m.samples), None)
    if metric is None:
        return f"{0:{spec}}"
    return cite(record, metric, "median", spec, load_run=index)


def dispatch(record: ServeBenchDetail | None, run: LoadRun, index: int) -> str:
    """p99 of how late the client sent each request after its schedule, in ms, cited."""
    metric = next((m for m in run.metrics if m.name == SERVE_DISPATCH_DELAY_S and m.samples), None)
    return "0" if metric is None else cite(record, metric, "p99", "ms:.0f", load_run=index)


def run_row(run: LoadRun, record: ServeBenchDetail | None = None, index: int = 0) -> list[str]:
    itl = run.samples(SERVE_ITL_S)
    gaps = "" if itl else " (per event)"
    goodput = median_of(run, SERVE_GOODPUT_PER_S)
    steady = unsteady(run)
    why_not = [*run.invalid_because, *([steady] if steady else [])]
    valid = "✅" if not why_not else f"{CAVEAT} invalid: {'; '.join(why_not)}"
    tokens = run.tokens
    count = ("ids from the server" if tokens.mismatched is None else
             "no usage from the server" if not tokens.usage_reported else
             f"{tokens.mismatched} of {tokens.usage_reported} differ")
    if tokens.source:
        named = {"asked": "the count asked (each stream ended at that length)"}
        count += "; counted from " + "+".join(named.get(source, source)
                                              for source in tokens.source.split("+"))
    errors = ", ".join(f"{n} {kind}" for kind, n in run.errors_by_kind.items())
    return [run_label(run), valid, f"{run.client_cpu:.0%}",
            f"{run.requests}" + (f" ({errors})" if errors else ""),
            latency(record, run, index, SERVE_TTFT_S),
            latency(record, run, index, SERVE_TTFT_SCHEDULED_S),
            latency(record, run, index, SERVE_ITL_S, SERVE_EVENT_GAP_S) + gaps,
            latency(record, run, index, SERVE_E2E_S), dispatch(record, run, index),
            cited(record, run, index, SERVE_REQUESTS_PER_S, ".2f"),
            cited(record, run, index, SERVE_OUTPUT_TOKENS_PER_S, ".0f"),
            f"{cited(record, run, index, SERVE_GOODPUT_PER_S, '.2f')} ({run.slo_attainment:.0%})"
            if run.slos and goodput is not None else "–", count,
            f"{tokens.events_per_token:.2f}" if tokens.events_per_token is not None else "–"]


def prefix_cache(record: ServeBenchDetail) -> str:
    """What the server's prefix cache did to these figures (every prompt is new either way)."""
    state, switch = record.prefix_cache.state, record.prefix_cache.switch
    if state == "switch":
        return f" Prefix cache off (`{switch}`)."
    if state == "no switch":
        return f" Prefix cache kept, no switch ({switch}); every prompt sent is new."
    if state == "unknown":
        return " Prefix cache as its owner set it; every prompt sent is new."
    return " No prefix cache." if state == "none" else ""


def run_label(run: LoadRun) -> str:
    load = run.load
    if load.mode == "closed":
        return f"{load.concurrency} user" + ("s" if load.concurrency != 1 else "")
    cap = f", cap {load.concurrency}" if load.concurrency else ""
    return f"{load.rate:g}/s {load.mode}{cap}"


HEAD = ["load", "valid point", "client CPU", "requests (errors)", "TTFT ms p50/90/95/99",
        "TTFT from schedule",
        "ITL ms", "end-to-end ms", "dispatch p99 ms", "req/s", "out tok/s", "goodput (SLO met)",
        "usage vs client tokens", "events per token"]


LOAD_METHOD = (
    "`nox -s serve-bench`: streamed completions with EOS off, fixed input and output "
    "lengths, a closed-loop sweep of users to saturation and any open-loop rates "
    "asked. Percentiles are p50 [its 95% interval] / p90 / p95 / p99 with the sample count "
    "(two loads whose p50 intervals overlap cannot be told apart; ITL's tokens within "
    "one request are not independent, so its interval is narrower than the truth); "
    "`*` marks one "
    "the count is too small to support (no 95% interval inside the samples). A run is "
    "not a valid point where more than 1% of its streams failed (an HTTP error, a "
    "dropped connection, an error inside the stream, fewer tokens than asked by the "
    "server's own count: each "
    "counted by kind, none of them in any latency or throughput figure) or where the "
    "client could not keep up; it is marked invalid with the figure, and the knee comes "
    "before it. Tokens are counted from the server's usage, else its token ids, else "
    "the count asked where the stream ended at that length (finish_reason `length`, EOS "
    "off), else the client re-tokenizing each whole text, never from the number of "
    "events; with no count from the server, a stream that ends without `length` is "
    "short and failed. TTFT runs to the first event carrying text, ids or logprobs: an "
    "empty chunk does not start it. Client and "
    "servers share this machine's cores: the client's own share of a core is beside "
    "every run.")


def load_section(records: list[ServeBenchDetail], plot: str | None) -> list[str]:
    if not records:
        return ["## Under load", "",
                "Not measured yet: `nox -s serve` (the cells), then `nox -s serve-bench`.", ""]
    lines = ["## Under load", "", LOAD_METHOD, ""]
    if plot:
        lines += [f"![p50 and p99 TTFT and TPOT against output throughput, per server]({plot})", ""]
    for record in records:
        lines += record_section(record)
    lines += ["### Method", "", *(f"- `{m.name}` ({m.unit}): {m.definition}"
                                  for m in METRICS.values() if m.name.startswith("serve_")), ""]
    return lines


def record_section(record: ServeBenchDetail) -> list[str]:
    """One server's sweep: what it was sent, where it saturates, its runs."""
    knee = record.knee
    where = (f"saturates past {knee.users} users ({knee.output_tokens_per_s:.0f} tok/s; "
             f"{knee.next_users} users give {knee.next_output_tokens_per_s:.0f}"
             + (f": {knee.why}" if knee.why else "") + ")" if knee else "no knee inside the sweep")
    sent = (f"chat (`/v1/chat/completions`): {record.prompts}; {record.output_tokens} output "
            "tokens; " if record.api == "chat" else
            f"{record.input_tokens} input, {record.output_tokens} output tokens; ")
    return [f"### `{record.engine}` ({record.server}) on {record.fixture}"
            + (", chat" if record.api == "chat" else ""), "",
            sent + (f"started in {record.startup_s:.1f} s" if record.startup_s
                    else "an endpoint, started by its owner") + f"; {where}.{prefix_cache(record)}"
            + ("" if record.eos_off else " EOS on: the server takes no ignore_eos, so a "
               "stream may end early at EOS (counted by its usage, no error)."), "",
            table([run_row(run, record, i) for i, run in enumerate(record.runs)], HEAD), "",
            *falling(record)]


FALLING = ((SERVE_ITL_S, "ITL"), (SERVE_TPOT_S, "TPOT"), (SERVE_E2E_S, "end-to-end"))


def falling(record: ServeBenchDetail) -> list[str]:
    """Where a closed-loop sweep's p50 falls as users rise with the two p50 intervals apart: not
    noise, said with the figures. Found on vllm serve at SmolLM2's shape and traced to the
    engine's own step time (docs/serving.md), which the grid times without a server."""
    runs = sorted((r for r in record.runs if r.load.mode == "closed"), key=lambda r: r.load.concurrency)
    found = []
    for name, label in FALLING:
        for low, high in itertools.pairwise(runs):
            a, b = (percentile_interval(r.samples(name), 50) for r in (low, high))
            if a and b and b[1] < a[0]:
                found.append(f"{label} p50 {median_of(low, name) * 1e3:.0f} ms "
                             f"[{a[0] * 1e3:.0f}–{a[1] * 1e3:.0f}] at {low.load.concurrency} users, "
                             f"{median_of(high, name) * 1e3:.0f} ms [{b[0] * 1e3:.0f}–"
                             f"{b[1] * 1e3:.0f}] at {high.load.concurrency}")
    if not found:
        return []
    return [f"{CAVEAT} Latency falls as load rises, the p50 intervals apart (not noise): "
            + "; ".join(found) + ". " + falling_cause(runs, record.fixture), ""]


BATCHES = 1.5
"""A server whose best req/s over the sweep is this many times its one user's batches requests
(transformers serve on small-llama: 6.31 at 1 user, 9.87 at 4, 8.64 at 8: it batches)."""


def falling_cause(runs: list[LoadRun], fixture: str) -> str:
    """What can explain a falling latency, said only where it can apply: a server that batches
    (its req/s grows with users) runs a step per batch, whose time the grid measures in process;
    one that serves a request at a time cannot owe it to a batch's step."""
    one = runs[0]
    most = max(runs, key=lambda r: median_of(r, SERVE_REQUESTS_PER_S) or 0.0)  # its best point
    rate_one, rate_most = (median_of(r, SERVE_REQUESTS_PER_S) or 0.0 for r in (one, most))
    if rate_one and rate_most >= BATCHES * rate_one:
        return ("The sweep's order does not make it where it was tested; the engine's step time "
                "at each batch size does — time the same batch sizes in process, without a "
                f"server: `nox -s bench -- CELL --fixture {fixture} --batches 1,2,3,4 "
                "--input-lengths N` (what was found: docs/serving.md).")
    return (f"This server does not batch (its best req/s {rate_most:.2f}, at "
            f"{most.load.concurrency} users, against {rate_one:.2f} at {one.load.concurrency}): a "
            "batch's step time cannot explain it, and its cause is not traced.")


def load_plot(records: list[ServeBenchDetail], path: Path) -> bool:
    """Latency against throughput, one curve per server over its closed-loop sweep: p50 and p99
    TTFT (left) and TPOT (right) against output tokens/s."""
    from pages.plotting import pyplot, save

    plt = pyplot()
    curves = [(r.engine, [run for run in r.runs if run.load.mode == "closed"]) for r in records]
    curves = [(name, runs) for name, runs in curves if runs]
    if plt is None or not curves:
        return False
    fig, panels = plt.subplots(1, 2, figsize=(10, 4))
    for (name, runs), color in zip(curves, plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        x = [median_of(run, SERVE_OUTPUT_TOKENS_PER_S) or 0 for run in runs]
        for axis, metric in zip(panels, (SERVE_TTFT_S, SERVE_TPOT_S)):
            for q, style in ((50, "o-"), (99, "x--")):
                y = [percentile(run.samples(metric) or [0], q) * 1e3 for run in runs]
                axis.plot(x, y, style, color=color, label=f"{name} p{q}")
    for axis, title in zip(panels, ("TTFT (ms)", "TPOT (ms)")):
        axis.set_xlabel("output tokens/s (closed loop: more users to the right)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    panels[0].legend(fontsize=7)
    return save(plt, fig, path)
