"""reports/THROUGHPUT.md: the benchmark figures, their spread, the roofline, and the method.

Two sources: every matrix cell's bench rung (the quick profile, one shape) and
the grid `nox -s bench` writes to results/bench/ (the full profile). Every
figure is a median of raw samples kept in the JSON; CV above NOISY_CV is
marked noisy.
"""

from __future__ import annotations

from bench.metrics import METRICS
from bench.stats import NOISY_CV
from core.details import BenchDetail, MetricRecord
from core.results import CellResult
from reports.markdown import CAVEAT, engine_label, header, table

LABELS = {"prefill_tokens_per_s": "prefill tok/s", "decode_tokens_per_s": "decode tok/s",
          "ttft_s": "TTFT", "tpot_s": "TPOT", "e2e_s": "end-to-end", "itl_s": "ITL",
          "sentences_per_s": "sentences/s", "embed_tokens_per_s": "tokens/s",
          "harness_overhead": "harness overhead", "memory_bandwidth_gb_s": "memory bandwidth"}
GENERATION = ("decode_tokens_per_s", "prefill_tokens_per_s", "ttft_s", "tpot_s", "e2e_s")
EMBEDDING = ("sentences_per_s", "embed_tokens_per_s")


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.3g} ms" if value < 1 else f"{value:.2f} s"
    if unit == "fraction":
        return f"{value:.2%}"
    return f"{value:,.1f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"


def figure(metric: MetricRecord | None) -> str:
    """"median (CV x%)", with ⚠️ noisy where the CV exceeds NOISY_CV."""
    if metric is None:
        return "–"
    s = metric.stats
    text = f"{fmt(s.median, metric.unit)} (CV {s.cv:.0%})"
    return f"{text} {CAVEAT} noisy" if s.cv > NOISY_CV else text


def bench_of(result: CellResult) -> BenchDetail | None:
    rung = result.rung("bench")
    return rung.detail if rung is not None and rung.status == "pass" else None


def mbu(detail: BenchDetail) -> str:
    rows = detail.roofline.decode_batch1 if detail.roofline else []
    return f"{rows[0].fraction:.1%}" if rows else "–"


def itl(detail: BenchDetail) -> str:
    m = detail.find("itl_s")
    if m is None:
        return "– (no streaming)"
    return " / ".join(fmt(v, "s") for v in (m.stats.median, m.stats.p90, m.stats.p99))


def label(r: CellResult) -> list[str]:
    return [engine_label(r), r.cell.env]


def cells_section(results: list[CellResult]) -> list[str]:
    lines = []
    gen = [r for r in results if r.cell.kind == "generation" and bench_of(r)]
    if gen:
        d0 = bench_of(gen[0])
        shape = next((m.params for m in d0.metrics if m.name == "decode_tokens_per_s"), {})
        rows = [[*label(r), *(figure(bench_of(r).find(n, batch=shape.get("batch"),
                                                      input_tokens=shape.get("input_tokens")))
                              for n in GENERATION),
                 itl(bench_of(r)), mbu(bench_of(r)), f"{bench_of(r).peak_rss_mib:,.0f} MiB"]
                for r in gen]
        lines += ["## Generation: every cell", "",
                  f"Shape: batch {shape.get('batch')}, {shape.get('input_tokens')} input tokens, "
                  f"{shape.get('new_tokens')} new tokens, EOS off (fixture {d0.fixture}). "
                  "ITL: median / p90 / p99. MBU: fraction of the bandwidth-bound decode limit.", "",
                  table(rows, ["engine", "environment", *(LABELS[n] for n in GENERATION),
                               "ITL", "MBU", "peak RSS"]), ""]
    emb = [r for r in results if r.cell.kind == "embedding" and bench_of(r)]
    if emb:
        m0 = bench_of(emb[0]).find("sentences_per_s")
        shape = m0.params if m0 is not None else {}
        rows = [[*label(r), *(figure(bench_of(r).find(n, **shape)) for n in EMBEDDING),
                 f"{bench_of(r).peak_rss_mib:,.0f} MiB"] for r in emb]
        lines += ["## Embedding: every cell", "",
                  "Shape: " + ", ".join(f"{k} {v}" for k, v in shape.items())
                  + f" (fixture {bench_of(emb[0]).fixture}).", "",
                  table(rows, ["engine", "environment", *(LABELS[n] for n in EMBEDDING),
                               "peak RSS"]), ""]
    return lines


def grid_section(grid: list[CellResult]) -> list[str]:
    lines = []
    runs = [r for r in grid if bench_of(r)]
    if not runs:
        return lines
    lines += ["## The grid (`nox -s bench`)", "",
              "One cell per engine, every shape of the full profile. Figures: median (CV).", ""]
    for r in runs:
        detail = bench_of(r)
        names = GENERATION if r.cell.kind == "generation" else EMBEDDING
        keys = ("batch", "input_tokens") if r.cell.kind == "generation" else ("batch", "input")
        shapes = list(dict.fromkeys(tuple(m.params.get(k) for k in keys)
                                    for m in detail.metrics if m.name == names[0]))
        rows = [[*shape, *(figure(detail.find(n, **dict(zip(keys, shape)))) for n in names)]
                for shape in shapes]
        lines += [f"### {engine_label(r)} · {r.cell.env} (fixture {detail.fixture}, "
                  f"peak RSS {detail.peak_rss_mib:,.0f} MiB"
                  + (f", peak GPU {detail.peak_gpu_mib:,.0f} MiB" if detail.peak_gpu_mib
                     else "") + ")", "",
                  table(rows, [*keys, *(LABELS[n] for n in names)]), ""]
    return lines


def roofline_section(results: list[CellResult]) -> list[str]:
    rows, compute = [], []
    for r in results:
        detail = bench_of(r)
        roof = detail.roofline if detail is not None else None
        if roof is None:
            continue
        rows += [[*label(r), detail.fixture, row.input_tokens,
                  f"{roof.weight_bytes_per_token / 2**20:,.2f} MiB", f"{roof.bandwidth_gb_s:,.1f} GB/s",
                  f"{row.decode_tokens_per_s:,.0f}", f"{row.bound_tokens_per_s:,.0f}",
                  f"{row.fraction:.1%}"] for row in roof.decode_batch1]
        compute += [[*label(r), row.input_tokens, f"{roof.compute_tflops:,.1f}",
                     f"{row.prefill_tokens_per_s:,.0f}", f"{row.fraction:.1%}"]
                    for row in roof.prefill_batch1]
    if not rows:
        return []
    gpu = ["On the GPU, prefill against the compute limit (matmul TFLOP/s measured in the same "
           "run; 2 FLOPs per weight per token):", "",
           table(compute, ["engine", "environment", "input tokens", "TFLOP/s", "prefill tok/s",
                           "fraction"]), ""] if compute else []
    return ["## Roofline: decode at batch 1 against memory bandwidth", "",
            "bound = measured bandwidth ÷ bytes of weights read per token; fraction = bytes per "
            "token × decode tok/s ÷ bandwidth. The tiny fixtures fit in the CPU caches, so their "
            "fraction measures per-token overhead, not DRAM traffic; a real-size shape "
            "(`nox -s bench -- --real-size`) is where the fraction means what it says.", "",
            table(rows, ["engine", "environment", "fixture", "input tokens", "weights / token", "bandwidth",
                         "decode tok/s", "bound tok/s", "fraction"]), "", *gpu]


def method_section(results: list[CellResult]) -> list[str]:
    details = [bench_of(r) for r in results if bench_of(r)]
    if not details:
        return []
    first = details[0]
    overheads = [m.stats.median for d in details for m in d.metrics
                 if m.name == "harness_overhead" and m.params.get("batch") == 1]
    bandwidths = [m.stats.median for d in details for m in d.metrics
                  if m.name == "memory_bandwidth_gb_s"]
    pb = first.pytest_benchmark
    lines = ["## Method", "",
             f"- Rounds: pytest-benchmark {pb.get('version', '')} `pedantic` rounds — "
             f"{first.warmup if first.warmup is not None else '?'} untimed warm-up round(s), then "
             f"{first.rounds if first.rounds is not None else '?'} "
             "timed rounds "
             "(never fewer than 5), one call per round and no calibration calls, garbage "
             "collection off while timing. Each figure is the median of the raw samples kept in "
             "the JSON, with p90, p99, min, max and CV beside it there; CV above "
             f"{NOISY_CV:.0%} is marked {CAVEAT} noisy.",
             "- EOS is off, so every round generates the same number of tokens; token counts "
             "come from the engine's own ids, and a round that makes a different number fails.",
             f"- Threads: {first.threads} (unset: each engine's default).",
             "- Memory: peak resident set of the benchmark process before the copy benchmark "
             "(and peak GPU memory where there is a GPU).",
             "- Roofline: the memory bandwidth is measured in the same process by a copy "
             "benchmark (2 × 256 MiB float64 arrays, read + write counted)"
             + (f": {min(bandwidths):,.1f}–{max(bandwidths):,.1f} GB/s across cells" if bandwidths
                else "") + ". Bytes per token: every weight tensor of the fixture once, except an "
             "input-embedding table that is not also the output projection. On a GPU, prefill "
             "against the compute limit would be reported beside it; this run had no GPU.",
             "- Harness overhead, per round: 1 − (time inside engine calls ÷ the round as "
             "pytest-benchmark timed it)"
             + (f": median {min(overheads):.2%}–{max(overheads):.2%} at batch 1" if overheads
                else "") + ".",
             "- Compare with a saved run: `nox -s bench -- --compare reports/results.json` flags "
             "only changes beyond both runs' measured noise (bench/compare.py).",
             "", "Definitions:", ""]
    lines += [f"- **{LABELS.get(m.name, m.name)}** (`{m.name}`, {m.unit}, {m.better} is better): "
              f"{m.definition}." for m in METRICS.values()]
    return [*lines, ""]


def throughput(results: list[CellResult], problems: list[str], *, grid: list[CellResult] = (),
               plots: list[tuple[str, str]] = ()) -> str:
    lines = header("Throughput", results, problems)
    lines += [f"![{alt}]({name})" for name, alt in plots]
    lines += [""] if plots else []
    lines += cells_section(results)
    lines += grid_section(list(grid))
    lines += roofline_section(list(grid) or results)  # the grid where there is one
    lines += method_section([*results, *grid])
    missing = [r.cell.id for r in results if not bench_of(r)]
    if missing:
        lines += [f"Cells without figures (see COMPATIBILITY.md): {', '.join(missing)}", ""]
    return "\n".join(lines).rstrip() + "\n"
