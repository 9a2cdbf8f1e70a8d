"""Every metric infermatrix publishes, defined once: the report's method section prints these."""

from __future__ import annotations

from dataclasses import dataclass

from core.bench_details import MetricRecord
from core.errors import InfermatrixError, unknown


class BenchInputError(InfermatrixError, ValueError):
    """An unknown metric or profile, or a batch size / length that is not a positive int."""


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: str
    """"higher" or "lower": the direction a baseline comparison calls an improvement."""
    definition: str


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("prefill_tokens_per_s", "tok/s", "higher",
           "input tokens of the whole batch ÷ time to first token"),
    Metric("decode_tokens_per_s", "tok/s", "higher",
           "output tokens after the first, over the batch ÷ the time they took. At batch 1 on an "
           "engine that streams ids (timed: one streamed call): the tokens after the first "
           "delta's ÷ (last delta − first delta), in the same call as its TTFT. Otherwise "
           "(timed: two calls): batch × (N − 1) ÷ (end-to-end − time to first token), two "
           "calls on two fresh batches; a round whose first call took longer than its second "
           "is dropped (rejected_rounds), never clamped"),
    Metric("ttft_s", "s", "lower",
           "time to first token: to the first delta carrying ids of a streamed call, or the wall "
           "time of generate(max_new_tokens=1) on a batch of the same shape (prefill and the "
           "first sampled token)"),
    Metric("tpot_s", "s", "lower",
           "time per output token after the first: the decode time ÷ its tokens, as "
           "decode_tokens_per_s times them"),
    Metric("e2e_s", "s", "lower",
           "end-to-end latency: wall time of generate(max_new_tokens=N), or of the streamed call"),
    Metric("ttft_fresh_s", "s", "lower",
           "the cache-hit detector's cold side: TTFT of a prompt the engine never saw"),
    Metric("ttft_repeat_s", "s", "lower",
           "the same prompt sent again at once: what a prefix cache gives (the warm-prefix "
           "figure, shown apart, never in a cold column)"),
    Metric("ttft_fresh_off_s", "s", "lower",
           "ttft_fresh_s on the engine with its prefix cache switched off, as the figures run"),
    Metric("ttft_repeat_off_s", "s", "lower",
           "ttft_repeat_s with the prefix cache switched off: near the fresh figure, or the "
           "switch did not take"),
    Metric("itl_s", "s", "lower",
           "inter-token latency: gaps between consecutive deltas of one streamed completion "
           "(batch 1, the engine's stream()), pooled over the timed rounds"),
    Metric("sentences_per_s", "sent/s", "higher", "texts in the batch ÷ wall time of one embed()"),
    Metric("embed_tokens_per_s", "tok/s", "higher",
           "tokens the model saw (after truncation to its max length, special tokens included) "
           "÷ wall time of one embed()"),
    Metric("harness_overhead", "fraction", "lower",
           "1 − (time inside engine calls ÷ the round's wall time as pytest-benchmark measured it)"),
    Metric("compute_tflops", "TFLOP/s", "higher",
           "peak matmul on the engine's device, in the dtype its matmuls compute in (int8 where "
           "it quantizes activations on the fly): 2 × n³ ÷ wall time of one n × n matmul, every "
           "core on the CPU (n = 2048; float32 the faster of numpy's BLAS and torch each round, "
           "bfloat16 or float16 through torch, int8 × int8 → int32 through torch._int_mm), torch "
           "on a GPU (n = 8192, synchronized)"),
    Metric("paired_decode_tokens_per_s", "tok/s", "higher",
           "a quantized (or reduced-dtype) cell's batch-1 decode, timed as decode_tokens_per_s, "
           "in rounds of two: its own model (side: quantized), then the same engine's float32 "
           "model in a process of its own (side: float; two engines in one process slowed each "
           "other), each on fresh prompts, the two taking turns; the speed-up is the median of "
           "the pairs' ratios"),
    Metric("paired_ttft_s", "s", "lower",
           "time to first token of the same paired rounds, each side's"),
    Metric("memory_bandwidth_gb_s", "GB/s", "higher",
           "read bandwidth of the engine's device: on the CPU bytes ÷ wall time of a numpy sum "
           "over an array of at least 256 MiB and 8 × the last-level cache, one thread per core "
           "on its own slice (from DRAM; a decode step reads its weights, so this is its limit: "
           "a copy, which also reads each line it writes, measured 2/3 of it here); on a GPU a "
           "torch sum over 2 GiB of its own memory, synchronized"),
    # serving under load (bench/loadgen.py, bench/serving.py): times on the client's monotonic
    # clock, read as each server-sent event completes
    Metric("serve_ttft_s", "s", "lower",
           "time to first token: the first event carrying generated content − the request's "
           "send; an event with no text counts only where the server says it carries a token "
           "(its ids or logprobs), so an empty chunk sent at once does not start the clock"),
    Metric("serve_ttft_scheduled_s", "s", "lower",
           "the same from the request's scheduled send time: client queueing included"),
    Metric("serve_e2e_s", "s", "lower", "end-to-end: the response's end − the request's send"),
    Metric("serve_e2e_scheduled_s", "s", "lower", "end-to-end from the scheduled send time"),
    Metric("serve_dispatch_delay_s", "s", "lower",
           "send − scheduled send: time a request waited in the client (for a slot or a late loop)"),
    Metric("serve_tpot_s", "s", "lower",
           "time per output token, per request: (last content event − first) ÷ (tokens − 1), "
           "tokens from the server's usage, else its ids, else the count asked where the stream "
           "ended at that length with EOS off, else the client's re-tokenized count"),
    Metric("serve_itl_s", "s", "lower",
           "inter-token latency, per token: the gap before an event ÷ the tokens it carries; only "
           "where events say their tokens (token_ids), else serve_event_gap_s"),
    Metric("serve_event_gap_s", "s", "lower",
           "gap between consecutive content events of a request (tokens per event unknown)"),
    Metric("serve_requests_per_s", "req/s", "higher",
           "the requests sent inside the measurement window (the one set every figure of the "
           "point counts) ÷ their span: a closed loop's mean over its users of first send to "
           "last end, an open loop's first to last completion (at least the window); a point "
           "recorded before this (its steady state unjudged) counted the requests that ended "
           "in the window, and its tokens arriving in it, ÷ its length"),
    Metric("serve_output_tokens_per_s", "tok/s", "higher",
           "the generated tokens of the requests serve_requests_per_s counts ÷ the same span"),
    Metric("serve_goodput_per_s", "req/s", "higher",
           "of the requests serve_requests_per_s counts (so never more), those that met every "
           "SLO, TTFT and end-to-end counted from the scheduled send (client queueing "
           "included) ÷ the same span (errors miss)"),
)}


def check_metric(name: str) -> Metric:
    """The metric called `name`, or a BenchInputError naming it and the valid ones."""
    if name not in METRICS:
        raise BenchInputError(unknown("metric", name, METRICS))
    return METRICS[name]


def record(name: str, samples: list[float], **params) -> MetricRecord:
    """A metric with its raw samples and the statistics derived from them."""
    from bench.stats import summarize

    metric = check_metric(name)
    return MetricRecord(name=name, unit=metric.unit, better=metric.better, params=params,
                        samples=list(samples), stats=summarize(samples))
