"""The benchmark, one pytest-benchmark test per shape, run inside a cell by incell/throughput/run.py.

Every test times its rounds with `benchmark.pedantic` (fixed rounds and
warm-up, one call per round: no calibration calls, so seconds-long rounds cost
what they measure). Inside a round the engine calls are timed directly; the
metrics derived from those times (bench/metrics.py) go with their raw samples
into the session's Measured (incell/throughput/measured.py), typed where they are measured.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest

from bench.limits import PEAK_TRIES, HostRead, matmul, read_array
from bench.metrics import record
from core.bench_details import PrefixCache, WeightsFacts
from engines.base import Embedder, Generator, SamplingParams
from incell.throughput.measured import Measured
from incell.throughput.timing import round_for

TEXT = ("Engineers measure what they build. They write down the numbers, the machine, the "
        "versions and the date, and then they measure again, because one number is an anecdote. "
        "A river runs past the old mill; the wheel turns slowly and the stones grind the grain. ")
SENTENCES = (
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog near the river bank in the morning.",
    "Tokens per second, time to first token and memory in use.",
    "She opened the window and the cold air of the north came into the room.",
)


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and every live descendant (vLLM's
    engine core runs in a child process), read from /proc; 0 where there is no /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    mine, total = {os.getpid()}, 0.0
    for pid in sorted(parents):  # children have larger pids, mostly; a second pass catches the rest
        if parents[pid] in mine:
            mine.add(pid)
    for pid in sorted(parents):
        if parents[pid] in mine:
            mine.add(pid)
    for pid in mine:
        total += used.get(pid, 0.0)
    return total


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rounds(benchmark, prof, one_round, measured: Measured) -> list:
    """Run pedantic rounds; return what each timed round returned (warm-ups dropped).

    The process's peak resident memory so far is kept per test: the copy benchmark runs
    last, so the engine tests' values are the engine's own peak.
    """
    kept: list = []
    calls = {"n": 0}

    def step():
        out = one_round()
        calls["n"] += 1
        if calls["n"] > prof.warmup:
            kept.append(out)

    benchmark.pedantic(step, rounds=prof.rounds, warmup_rounds=prof.warmup, iterations=1)
    test = benchmark.name.split("[")[0]  # the test function, its parameters left out
    measured.peak_rss_mib[test] = max(measured.peak_rss_mib.get(test, 0.0), peak_rss_mib())
    return kept


def overhead(benchmark, inner: list[float]) -> list[float]:
    """Per round: 1 - engine time / the round's wall time as pytest-benchmark measured it."""
    outer = benchmark.stats.stats.data
    return [max(0.0, 1 - i / o) for i, o in zip(inner, outer)]


def require(engine, kind: type, capability: str | None = None) -> None:
    if not isinstance(engine, kind):
        pytest.skip(f"{engine.id} is not a {kind.__name__}")
    if capability and not getattr(engine.capabilities, capability):
        pytest.skip(f"{engine.id} declares no {capability} support")


def test_generation(benchmark, measured, engine, prof, *, gen_shape, prompts) -> None:
    """TTFT, decode, end-to-end, and what follows from them, at one (batch, input length). Every
    call, warm-up rounds too, sends prompts the engine has never seen: no prefix cache serves
    them. At batch 1 on an engine that streams ids, TTFT and decode come from one streamed call;
    otherwise from two (the first token alone, then the whole answer) on two fresh batches, and a
    round whose first call took longer than its second says nothing of decode: it is dropped, and
    the record says how many were."""
    require(engine, Generator)
    (batch, length), n = gen_shape, prof.new_tokens
    one_round, route = round_for(engine, prompts, prof, batch, length)
    text = not engine.capabilities.token_input
    cpu, wall = tree_cpu_seconds(), time.perf_counter()
    timed = rounds(benchmark, prof, one_round, measured)
    cores = (tree_cpu_seconds() - cpu) / (time.perf_counter() - wall)
    measured.cores_busy[f"batch{batch}-in{length}"] = round(cores, 2)
    note_weights(measured, engine)
    ttft, e2e = [r.ttft_s for r in timed], [r.e2e_s for r in timed]
    kept = [(r.decode_s, r.decode_tokens) for r in timed if r.decode_s > 0]
    params = {"batch": batch, "input_tokens": length, "new_tokens": n,
              **({"batching": "sequential"} if batch > 1 and not engine.capabilities.batch_decode
                 else {})}
    timing = {"timed": route,
              "rejected_rounds": len(timed) - len(kept)}
    measured.metrics += [
        record("prefill_tokens_per_s", [r.prompt_tokens / r.ttft_s for r in timed], **params,
               **({"prompt_tokens_fed": [r.prompt_tokens for r in timed]} if text else {})),
        record("ttft_s", ttft, **params),
        record("e2e_s", e2e, **params),
        record("harness_overhead", overhead(benchmark, [r.engine_s for r in timed]), **params),
    ]
    if kept:
        measured.metrics += [
            record("decode_tokens_per_s", [batch * k / d for d, k in kept], **params, **timing),
            record("tpot_s", [d / k for d, k in kept], **params, **timing)]


def note_weights(measured: Measured, engine) -> None:
    """What the roofline charges, the dtype the compute peak is measured in, and the files the
    engine's own tool runs on (incell/referee.py)."""
    measured.loaded, measured.dtype = engine.weights, engine.compute_dtype
    measured.weights = weights_facts(engine)


def weights_facts(engine) -> WeightsFacts:
    """What the engine loaded and what that cost: bytes, its format's line, the load's seconds,
    and every conversion it asked the cache for (seconds to make, bytes on disk)."""
    from fixtures.convert import USED, record

    return WeightsFacts(bytes=engine.weights.bytes, note=engine.weights.note,
                        load_s=getattr(engine, "load_s", None),
                        conversions=[record(entry) for entry in dict.fromkeys(USED) if entry.is_dir()])


def middle_length(prof) -> int:
    return sorted(prof.input_lengths)[len(prof.input_lengths) // 2]


def test_inter_token_latency(benchmark, measured, engine, prof, prompts) -> None:
    """Gaps between streamed deltas at batch 1, on the profile's middle input length, each
    round a new prompt."""
    require(engine, Generator, "streaming")
    length = middle_length(prof)
    params = SamplingParams(max_new_tokens=prof.new_tokens, ignore_eos=True)
    texts = [prompts.next_text(words=length // 2) for _ in range(prof.warmup + prof.rounds)]
    sent = [len(engine.tokenize(t)) for t in texts]  # about `length` tokens each
    ready = iter(texts)

    def one_round():
        prompt = next(ready)
        stamps = [time.perf_counter()]
        for _ in engine.stream(prompt, params):
            stamps.append(time.perf_counter())
        return list(np.diff(stamps[1:]))  # the first gap is TTFT, measured elsewhere

    gaps = [g for r in rounds(benchmark, prof, one_round, measured) for g in r]
    measured.metrics += [
        record("itl_s", gaps, batch=1, input_tokens=int(np.median(sent)),
               new_tokens=prof.new_tokens)]


def test_prefix_cache(benchmark, measured, engine, as_shipped, *, prof, prompts) -> None:
    """The cache-hit detector: each round a new prompt's TTFT, then the same prompt's again at
    once. Where a prefix cache serves the repeat, its TTFT falls far below the fresh one's; the
    report says so with both figures (the warm-prefix row), and the cold figures never use it.

    It runs on the engine as shipped, and where that is another instance (the engine has a
    switch), on the one the figures are timed on too: its repeat must find no cache."""
    if prof.paired:  # the real profile: the same engine settings as the matrix's bench rung
        pytest.skip("the detector runs in the matrix's bench rung, same engine settings; on a real "
                    "shape its four long prompts per round would add a minute per engine")
    require(engine, Generator, "token_input")
    length = middle_length(prof)
    first = SamplingParams(max_new_tokens=1, ignore_eos=True)
    sides = [("", as_shipped)] + ([("_off", engine)] if as_shipped is not engine else [])
    ready = iter(prompts.batch((prof.warmup + prof.rounds) * len(sides), length))

    def one_round():
        times = []
        for _, adapter in sides:
            prompt = next(ready)
            t0 = time.perf_counter()
            adapter.generate_from_ids([prompt], first)
            t1 = time.perf_counter()
            adapter.generate_from_ids([prompt], first)
            times += [t1 - t0, time.perf_counter() - t1]
        return times

    timed = rounds(benchmark, prof, one_round, measured)
    params = {"batch": 1, "input_tokens": length}
    measured.prefix_cache = PrefixCache(engine.prefix_cache, engine.prefix_cache_switch)
    measured.metrics += [
        record(f"ttft_{which}{suffix}_s", [t[2 * i + j] for t in timed], **params)
        for i, (suffix, _) in enumerate(sides) for j, which in enumerate(("fresh", "repeat"))]


def embed_texts(kind: str, batch: int) -> list[str]:
    if kind == "short":
        return [SENTENCES[i % len(SENTENCES)] for i in range(batch)]
    return [TEXT[i % 40:] * 8 for i in range(batch)]  # far past any max length: truncated


def token_counts(model_dir: Path, texts: list[str]) -> int:
    """Tokens the model sees: the fixture's tokenizer, truncated at its max sequence length."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()  # tokenizer.json may pad every text to a fixed width; count real tokens
    tok.no_truncation()
    limit = 512
    st_config = model_dir / "sentence_bert_config.json"
    if st_config.is_file():
        limit = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length", limit)
    return sum(min(len(tok.encode(t).ids), limit) for t in texts)


def test_embedding(benchmark, measured, engine, prof, *, embed_shape, model_dir) -> None:
    require(engine, Embedder)
    batch, kind = embed_shape
    texts = embed_texts(kind, batch)
    tokens = token_counts(model_dir, texts)

    def one_round():
        t0 = time.perf_counter()
        out = engine.embed(texts)
        seconds = time.perf_counter() - t0
        if len(out) != batch:
            raise AssertionError(f"engine returned {len(out)} rows for {batch} texts")
        return seconds

    seconds = rounds(benchmark, prof, one_round, measured)
    params = {"batch": batch, "input": kind, "tokens": tokens}
    measured.metrics += [
        record("sentences_per_s", [batch / s for s in seconds], **params),
        record("embed_tokens_per_s", [tokens / s for s in seconds], **params),
        record("harness_overhead", overhead(benchmark, seconds), **params),
    ]


def test_memory_bandwidth(benchmark, measured, prof, request) -> None:
    """The roofline's denominator, measured in the same run on the device the engine computes on.

    CPU: a read of one array with one thread per core (numpy releases the GIL while it sums),
    each thread its own slice, the array at least 8 times the last-level cache so that DRAM, not
    a cache, serves it. A read, because a decode step reads its weights: a copy also reads every
    line it writes, and counted as 2 bytes a byte it showed 23 GB/s where a read showed 33 on
    this machine. CUDA: a sum over 2 GiB of device memory, synchronized (the host's DRAM never
    divides a GPU row)."""
    if request.config.infermatrix_ask.device == "cuda":
        device_read(benchmark, prof, measured)
        return
    src, mib = read_array()
    with HostRead(src) as read:
        seconds = rounds(benchmark, prof, read, measured)
    measured.metrics += [
        record("memory_bandwidth_gb_s", [src.nbytes / s / 1e9 for s in seconds],
               mib=mib, threads=read.threads, access="read", device="cpu")]


def cuda_torch():
    """torch with a GPU that answers, or the test is skipped saying which is missing."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("the cell's device is cuda, and no GPU answers")
    return torch


def device_read(benchmark, prof, measured: Measured, mib: int = 2048, repeats: int = 10) -> None:
    """Read bandwidth of the GPU's own memory: `repeats` sums over `mib` MiB, synchronized."""
    torch = cuda_torch()
    src = torch.ones(mib * 2**20 // 4, device="cuda", dtype=torch.float32)

    def one_round():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            src.sum()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / repeats

    seconds = rounds(benchmark, prof, one_round, measured)
    measured.metrics += [
        record("memory_bandwidth_gb_s", [src.nbytes / s / 1e9 for s in seconds], mib=mib,
               access="read", device="cuda", device_name=torch.cuda.get_device_name())]


def test_compute_peak(benchmark, measured, prof, request, engine) -> None:
    """The compute roofline's ceiling, measured in the same run on the engine's device and in the
    dtype its matmuls compute in (Engine.compute_dtype: int8 where it quantizes activations on
    the fly): a dense matmul, with every core on the CPU — float32 through numpy's BLAS and
    torch, the faster of the two each round (an engine's oneDNN GEMM outran numpy's alone by 2-4%
    on SmolLM2's shape) — and with torch on a GPU (synchronized; bfloat16 tensor cores run about
    15x float32 on an H200, so a bf16 row held to a float32 peak would look impossible)."""
    device, dtype = request.config.infermatrix_ask.device, engine.compute_dtype
    if device == "cuda":
        cuda_torch()
    libraries = ("numpy", "torch") if device == "cpu" and dtype == "float32" else ("torch",)
    n, repeats = (8192, 10) if device == "cuda" else (2048, 1)
    calls = {name: call for name in libraries if (call := matmul(name, dtype, n, device))}
    if not calls:
        pytest.skip(f"no {dtype} matmul in this cell (torch is not installed): the peak its "
                    "prefill would be held to is not measured")
    sync = __import__("torch").cuda.synchronize if device == "cuda" else (lambda: None)

    def timed(call) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(repeats):
            call()
        sync()
        return (time.perf_counter() - t0) / repeats

    # each round the best of TRIES calls of each library: on a shared VM a neighbour slows a
    # 40 ms matmul often, and a best of ten single calls fell short of what a lucky engine
    # sample then reached (a CTranslate2 prefill sample 4% past it, 2026-12-07)
    tries = PEAK_TRIES if device == "cpu" else 1
    seconds = rounds(benchmark, prof, lambda: min(timed(c) for c in calls.values()
                                                  for _ in range(tries)), measured)
    measured.metrics += [
        record("compute_tflops", [2 * n**3 / s / 1e12 for s in seconds], n=n, dtype=dtype,
               device=device, library="+".join(calls))]
