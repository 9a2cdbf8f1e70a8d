"""reports/THROUGHPUT.md: the benchmark figures, their spread, the roofline, and the method.

Two sources: every matrix cell's bench rung (the quick profile, one shape) and
the grid `nox -s bench` writes to results/bench/ (the full profile). Every
figure is a median of raw samples kept in the JSON; CV above NOISY_CV is
marked noisy.
"""

from __future__ import annotations

from bench.metrics import METRICS
from bench.stats import NOISY_CV, ratio_interval
from core.bench_details import (
    DECODE_TOKENS_PER_S,
    E2E_S,
    EMBED_TOKENS_PER_S,
    HARNESS_OVERHEAD,
    ITL_S,
    MEMORY_BANDWIDTH_GB_S,
    PREFILL_TOKENS_PER_S,
    SENTENCES_PER_S,
    TPOT_S,
    TTFT_S,
    BenchDetail,
    MetricRecord,
    Threads,
)
from core.results import CellResult
from core.run_limits import RunLimits
from pages.markdown import CAVEAT, engine_label, fmt, header, speed_label, table
from pages.runs import by_run, held_to_run, limits_lines, under_runs
from pages.sources import cite, cite_fraction, percent

LABELS = {PREFILL_TOKENS_PER_S: "prefill tok/s", DECODE_TOKENS_PER_S: "decode tok/s",
          TTFT_S: "TTFT", TPOT_S: "TPOT", E2E_S: "end-to-end", ITL_S: "ITL",
          SENTENCES_PER_S: "sentences/s", EMBED_TOKENS_PER_S: "tokens/s",
          HARNESS_OVERHEAD: "harness overhead", MEMORY_BANDWIDTH_GB_S: "memory bandwidth"}
GENERATION = (DECODE_TOKENS_PER_S, PREFILL_TOKENS_PER_S, TTFT_S, TPOT_S, E2E_S)
EMBEDDING = (SENTENCES_PER_S, EMBED_TOKENS_PER_S)


def figure(metric: MetricRecord | None, result: CellResult | None = None) -> str:
    """"median (CV x%)", with ⚠️ noisy where the CV exceeds NOISY_CV; the median cited where
    `result` is given (pages/sources.py)."""
    if metric is None:
        return "–"
    s = metric.stats
    median = cite(result, metric, "median", f"unit:{metric.unit}") if result is not None \
        else fmt(s.median, metric.unit)
    text = f"{median} (CV {s.cv:.0%})"
    return f"{text} {CAVEAT} noisy" if s.cv > NOISY_CV else text


CACHE_HIT = 0.6
"""A repeated prompt whose TTFT is below this share of a fresh one's was served by a cache."""


def held_to_limit(fraction: float, limit: str) -> str:
    """A fraction of a physical limit; past 100% it is a finding, never a bare figure."""
    if fraction > 1:
        return f"{CAVEAT} implausible {fraction:.0%}: past the {limit} measured in this run"
    return percent(fraction)


def bandwidth_limit(roof) -> str:
    """The limit a decode row is held to: the host's DRAM, or the GPU's own memory."""
    return "DRAM bandwidth" if roof.device == "cpu" else \
        f"{roof.device_name or roof.device} memory bandwidth"


def compute_limit(roof) -> str:
    """The limit a prefill row is held to: the peak in the dtype the engine computes in."""
    where = "" if roof.device == "cpu" else f" of {roof.device_name or roof.device}"
    return f"peak {roof.compute_dtype} matmul FLOP/s{where}"


def mbu(detail: BenchDetail, result: CellResult | None = None) -> str:
    """The batch-1 decode median × bytes a token ÷ the run's read bandwidth, cited with it where
    `result` (the record it was read from) is given."""
    roof, rows = detail.roofline, detail.decode_bounds
    if not rows:
        return "–"
    if roof.cache_resident:
        return (f"cache-resident ({roof.weight_bytes_per_token / 2**20:,.1f} MiB ≤ "
                f"{roof.last_level_cache_bytes / 2**20:,.0f} MiB cache)")
    if rows[0].fraction > 1:
        return held_to_limit(rows[0].fraction, bandwidth_limit(roof))
    decode = next(m for m in detail.metrics if m.name == DECODE_TOKENS_PER_S and m.batch == 1)
    return cite_fraction(result, decode, roof.weight_bytes_per_token, roof.bandwidth_gb_s * 1e9,
                         roof.device)


def detected(detail: BenchDetail, suffix: str = "") -> tuple[bool | None, str] | None:
    """The cache-hit detector on one side (suffix "": as shipped, "_off": switched off): whether
    the repeat hit a cache (None: undecided, the ratio's ~95% interval holds CACHE_HIT), and the
    figures that say so."""
    fresh, repeat = detail.find(f"ttft_fresh{suffix}_s"), detail.find(f"ttft_repeat{suffix}_s")
    if fresh is None or repeat is None:
        return None
    ratio, low, high = ratio_interval(repeat.samples, fresh.samples)
    figures = f"repeat {ratio:.0%} of fresh, {low:.0%}–{high:.0%}"
    if high < CACHE_HIT:
        return True, (f"a repeat {fmt(repeat.stats.median, 's')} vs "
                      f"{fmt(fresh.stats.median, 's')} fresh ({figures})")
    return (False if low > CACHE_HIT else None), figures


def prefix_cache(detail: BenchDetail) -> str:
    """The cache-hit detector's verdict: a repeated prompt's TTFT against a fresh one's, on the
    engine as shipped and, where it has a switch, with the cache off as the figures ran."""
    shipped, off = detected(detail), detected(detail, "_off")
    if shipped is None:
        return "–"
    state = detail.prefix_cache.state
    hit, figures = shipped
    text = (f"{CAVEAT} hit: {figures}" if hit else f"none seen ({figures})" if hit is False
            else f"{CAVEAT} undecided ({figures}: the interval holds the {CACHE_HIT:.0%} line)")
    if off is not None:
        off_hit, off_figures = off
        text = f"as shipped {text}; " + (
            f"{CAVEAT} still hit with it off: {off_figures}" if off_hit else
            f"off for the figures ({off_figures})" if off_hit is False else
            f"{CAVEAT} undecided with it off ({off_figures})")
    elif hit and state == "none":
        text += " (the engine declares none)"
    elif state == "no switch":
        text += "; no switch to turn it off"
    return text


REFEREE_BAND = 0.10
"""Our figure and the engine's own tool's may differ by this share before ⚠️."""


def ratio_text(ours: float | None, theirs: float) -> str:
    if ours is None or not theirs:
        return "–"
    ratio = ours / theirs
    mark = "" if abs(ratio - 1) <= REFEREE_BAND else f"{CAVEAT} "
    return f"{mark}{ratio:.2f}×"


REFEREE_METHOD = (
    "Our figures beside the engine's own tool's, on the same file with the same threads "
    "and shape, in the same bench rung (llama.cpp: `llama-bench`, built from the "
    "binding's own llama.cpp tree). Prefill: ours from the first token's time of a "
    "128-token prompt (the sampler's first step included), llama-bench's pp128 from an "
    "empty context. Decode: ours 31 tokens after the first, llama-bench's tg32 after "
    f"a 128-token context. ⚠️: the two differ by more than {REFEREE_BAND:.0%}. Medians "
    "of the tool's repetitions. The reason found for llama.cpp, measured on small-llama "
    "(numpy2 cell, 2 threads): the binding's own `Llama.eval` (llama_decode through "
    "ctypes, the last logits copied out) runs a 128-token prompt at 12,800 tok/s and one "
    "token at a time at 2,724 tok/s against llama-bench's 14,300 and 3,661; the "
    "binding's generate loop (its sampler, detokenizing, our stop handling) brings "
    "decode to 1,862 tok/s and adds 0.7 ms to the first token. A step of this model "
    "costs 0.27 ms in llama.cpp, so the Python path's 0.26 ms a token halves it. At "
    "SmolLM2's real shape (THROUGHPUT's opening table) a step costs 8–20 ms and the "
    "ratios were 0.74–1.19× before two causes were found: decode was the difference of "
    "two calls each carrying a 512-token prefill (now one streamed call), and the tool "
    "ran with flash attention on (its default, auto) where the binding's `Llama` has it "
    "off (now `-fa off`: the tool's prefill on Q4_K_M fell from 597–669 to 430–596 "
    "tok/s). What is left is this shared VM's run-to-run noise: the same llama-bench "
    "command on the same file, run twice back to back, gave 129.9 and 101.4 tok/s "
    "decode, so a single ratio outside the band, in either direction, is not a "
    "difference until it repeats. ")


def referee_section(results: list[CellResult]) -> list[str]:
    """Our prefill and decode beside the engine's own benchmark tool's, same file and shape."""
    judged = [r for r in results if r.bench and r.bench.referee is not None]
    if not judged:
        return []
    rows = []
    for r in judged:
        d = r.bench
        ref = d.referee
        prefill = d.find(PREFILL_TOKENS_PER_S, batch=1)
        decode = d.find(DECODE_TOKENS_PER_S, batch=1)
        ours_p = prefill.stats.median if prefill else None
        ours_d = decode.stats.median if decode else None
        rows.append([*label(r), f"{ours_p:,.0f}" if ours_p else "–",
                     f"{ref.prefill_tokens_per_s:,.0f}", ratio_text(ours_p, ref.prefill_tokens_per_s),
                     f"{ours_d:,.0f}" if ours_d else "–", f"{ref.decode_tokens_per_s:,.0f}",
                     ratio_text(ours_d, ref.decode_tokens_per_s), f"{ref.tool} {ref.commit}"])
    first = judged[0]
    commands = first.bench.referee.commands
    return ["## Referees: the engine's own benchmark tool", "",
            REFEREE_METHOD + f"The tool repeats each test "
            f"{len(first.bench.referee.decode_samples)} times; commands: "
            + "; ".join(f"`{c}`" for c in commands), "",
            table(rows, ["engine", "environment", "prefill tok/s (ours)", "prefill (tool)",
                         "ours ÷ tool", "decode tok/s (ours)", "decode (tool)", "ours ÷ tool",
                         "tool, commit"]), ""]


def itl(detail: BenchDetail) -> str:
    """ITL median / p90 / p99, per token; named per delivery where the streams gave fewer gaps
    than tokens (a delta carried several tokens: its gaps are between deliveries)."""
    m = detail.find(ITL_S)
    if m is None:
        return "– (no streaming)"
    text = " / ".join(fmt(v, "s") for v in (m.stats.median, m.stats.p90, m.stats.p99))
    tokens = (detail.rounds or 0) * (m.params.get("new_tokens", 1) - 1)
    if tokens and len(m.samples) < tokens:
        return f"per delivery, not per token: {text} ({len(m.samples)} gaps for {tokens} tokens)"
    return text


def label(r: CellResult) -> list[str]:
    return [speed_label(r), r.cell.env]


def configuration(r: CellResult) -> tuple:
    """What a figure depends on: the engine, its device, dtype and quantization, the versions of
    the packages the cell is about (torch and numpy too) and the fixture. Two cells with equal
    ones measure one configuration, whatever their names."""
    versions = r.versions
    packages = sorted({*r.cell.key_packages, "torch", "numpy"} & versions.keys())
    return (r.cell.engine, r.cell.device, r.cell.dtype, r.quantization or "none",
            tuple((p, versions[p]) for p in packages), r.bench.fixture if r.bench else "")


def by_configuration(results: list[CellResult]) -> list[list[CellResult]]:
    """The cells grouped by configuration, in order of first appearance: two runs of one
    configuration are one row showing both, never two rows that read as two engines."""
    groups: dict[tuple, list[CellResult]] = {}
    for r in results:
        groups.setdefault(configuration(r), []).append(r)
    return list(groups.values())


def runs_label(group: list[CellResult]) -> list[str]:
    """The row's engine and environments; one configuration in several cells says so, each
    run's figures then standing in the cells' order, its date beside."""
    first = group[0]
    if len(group) == 1:
        return label(first)
    envs = " · ".join(f"{r.cell.env} ({(r.finished_at or r.started_at)[:10]})" for r in group)
    return [speed_label(first), f"{envs}: one configuration, {len(group)} runs"]


def runs_figure(group: list[CellResult], name: str, **shape) -> str:
    return " · ".join(figure(r.bench.find(name, **shape), r) for r in group)


def generation_cells_section(results: list[CellResult]) -> list[str]:
    """Every generation cell's bench rung at its shape: a row per cell."""
    gen = [r for r in results if r.cell.kind == "generation" and r.bench
           and r.bench.find(DECODE_TOKENS_PER_S)]
    if not gen:
        return []
    d0 = gen[0].bench
    shape = next(m for m in d0.metrics if m.name == DECODE_TOKENS_PER_S)
    at = {"batch": shape.batch, "input_tokens": shape.input_tokens}
    head = ["engine", "environment", *(LABELS[n] for n in GENERATION), "ITL", "MBU",
            "prefix cache", "peak RSS"]
    groups = by_run(gen)
    tables = [table([[*runs_label(g), *(runs_figure(g, n, **at) for n in GENERATION),
                      " · ".join(itl(r.bench) for r in g), " · ".join(mbu(r.bench, r) for r in g),
                      " · ".join(prefix_cache(r.bench) for r in g),
                      " · ".join(f"{r.bench.peak_rss_mib:,.0f} MiB" if r.bench.peak_rss_mib
                                 else "–" for r in g)]
                     for g in by_configuration(group)], head) for group in groups]
    return ["## Generation: every cell", "",
            f"Shape: batch {shape.batch}, {shape.input_tokens} input tokens, "
            f"{shape.new_tokens} new tokens, EOS off (fixture {d0.fixture}). "
            "Every timed call sends prompts the engine never saw (cache-cold); at batch 1 "
            "on an engine that streams, TTFT and decode come from one streamed call, else "
            "from two calls (a round whose first outlasts its second is dropped: "
            "`rejected_rounds` in the record). ITL: median "
            "/ p90 / p99. MBU: fraction of the bandwidth-bound decode limit, or "
            "cache-resident where the weights fit in the last-level cache. Prefix cache: "
            "the same prompt sent again at once against a fresh one (TTFT medians), on the "
            "engine as shipped and, where it has a switch, with it off as the figures ran; "
            "a hit is the warm-prefix figure, never the cold columns'. Peak RSS: the "
            "engine's process after the timed tests, before the machine probe. Two cells of "
            "one configuration (the same engine, versions, dtype, quantization and fixture) "
            "are one row, each run's figures in turn with its date: how far two runs of one "
            "configuration part is this VM's drift, not a difference between engines. One "
            "table per run (a cell reused from an earlier run keeps its run): rows of different "
            "runs are not set against each other.", "",
            *under_runs(groups, tables)]


def embedding_cells_section(results: list[CellResult]) -> list[str]:
    """Every embedding cell's bench rung at its shape: a row per cell."""
    emb = [r for r in results if r.cell.kind == "embedding" and r.bench]
    if not emb:
        return []
    m0 = emb[0].bench.find(SENTENCES_PER_S)
    shape = m0.params if m0 is not None else {}
    head = ["engine", "environment", *(LABELS[n] for n in EMBEDDING), "peak RSS"]
    groups = by_run(emb)
    tables = [table([[*runs_label(g), *(runs_figure(g, n, **shape) for n in EMBEDDING),
                      " · ".join(f"{r.bench.peak_rss_mib:,.0f} MiB" if r.bench.peak_rss_mib
                                 else "–" for r in g)] for g in by_configuration(group)], head)
              for group in groups]
    return ["## Embedding: every cell", "",
            "Shape: " + ", ".join(f"{k} {v}" for k, v in shape.items())
            + f" (fixture {emb[0].bench.fixture}); one table per run.", "",
            *under_runs(groups, tables)]


def grid_section(grid: list[CellResult]) -> list[str]:
    lines = []
    runs = [r for r in grid if r.bench]
    if not runs:
        return lines
    lines += ["## The grid (`nox -s bench`)", "",
              "One cell per engine, every shape of the full profile. Figures: median (CV).", ""]
    for r in runs:
        detail = r.bench
        names = GENERATION if r.cell.kind == "generation" else EMBEDDING
        generation = r.cell.kind == "generation"
        keys = ("batch", "input_tokens") if generation else ("batch", "input")
        shapes = list(dict.fromkeys((m.batch, m.input_tokens if generation else m.input)
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
        detail = r.bench
        roof = detail.roofline if detail is not None else None
        if roof is None:
            continue
        rows += [[*label(r), detail.fixture, row.input_tokens,
                  f"{roof.weight_bytes_per_token / 2**20:,.2f} MiB", f"{roof.bandwidth_gb_s:,.1f} GB/s",
                  f"{row.decode_tokens_per_s:,.0f}", f"{row.bound_tokens_per_s:,.0f}",
                  "cache-resident" if roof.cache_resident
                  else held_to_limit(row.fraction, bandwidth_limit(roof))]
                 for row in detail.decode_bounds]
        compute += [[*label(r), row.input_tokens,
                     f"{roof.compute_tflops:,.3f} ({roof.compute_dtype})",
                     f"{row.prefill_tokens_per_s:,.0f}",
                     held_to_limit(row.fraction, compute_limit(roof))]
                    for row in detail.prefill_bounds]
    if not rows:
        return []
    gpu = ["Prefill at batch 1 against the compute limit (peak matmul TFLOP/s measured in the "
           "same run on the engine's device and in the dtype it computes in: every core on the "
           "CPU, the GPU's own on CUDA; 2 FLOPs per weight per token, attention left out, so a "
           "true figure stays below 100%):", "",
           table(compute, ["engine", "environment", "input tokens", "TFLOP/s", "prefill tok/s",
                           "fraction"]), ""] if compute else []
    return ["## Roofline: decode at batch 1 against memory bandwidth", "",
            "bound = bandwidth measured on the engine's device (the host's DRAM for a CPU row, "
            "the GPU's own memory for a CUDA row, never the host's; the row's run's limit where "
            "the run recorded one, else the cell's own probe) ÷ bytes of weights read per "
            "token (the fixture's, scaled "
            "to the engine's own weight files as loaded); fraction = bytes per token × decode "
            "tok/s ÷ bandwidth. Weights that fit in the last-level cache are read from it, not "
            "from DRAM: those rows say cache-resident, and their speed measures per-token "
            "overhead; a real-size shape (`nox -s bench -- --real-size`) is where the fraction "
            "means what it says. A fraction past 100% is marked implausible, never shown bare.", "",
            table(rows, ["engine", "environment", "fixture", "input tokens", "weights / token", "bandwidth",
                         "decode tok/s", "bound tok/s", "fraction"]), "", *gpu]


def threads_line(threads: Threads) -> str:
    env = ", ".join(f"{k} {v if v is not None else 'unset'}" for k, v in threads.env.items())
    return f"{threads.cpu_count} cores" + (f"; {env}" if env else "")


def roofline_line(bandwidths: list[float]) -> str:
    return ("- Roofline: the memory bandwidth is measured in the same process by a read (a sum, "
            "one thread per core, an array of at least 256 MiB and 8 × the last-level cache; "
            "results made before this change used a copy, read + write counted, about 2/3 of "
            "a read here)"
            + (f": {min(bandwidths):,.1f}–{max(bandwidths):,.1f} GB/s across cells" if bandwidths
               else "") + ". Bytes per token: every weight tensor of the fixture once, except an "
            "input-embedding table that is not also the output projection, scaled to the "
            "engine's own weight files where its adapter knows their size. MBU is of the run's "
            "limit: the best reading taken before its first bench rung and after its last "
            "(bench/limits.py; rows of a run before that, of the best reading of the cell's own "
            "probe). Prefill is held to the best reading of the peak matmul rate measured the "
            "same way, in the dtype the engine's matmuls compute in (int8 where it quantizes "
            "activations on the fly).")


def overhead_line(overheads: list[float]) -> str:
    return ("- Harness overhead, per round: 1 − (time inside engine calls ÷ the round as "
            "pytest-benchmark timed it)"
            + (f": median {min(overheads):.2%}–{max(overheads):.2%} at batch 1" if overheads
               else "") + ".")


def method_section(results: list[CellResult]) -> list[str]:
    details = [r.bench for r in results if r.bench]
    if not details:
        return []
    first = details[0]
    overheads = [m.stats.median for d in details for m in d.metrics
                 if m.name == HARNESS_OVERHEAD and m.batch == 1]
    bandwidths = [m.stats.median for d in details for m in d.metrics
                  if m.name == MEMORY_BANDWIDTH_GB_S]
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
             f"- Threads: {threads_line(first.threads)} (unset: each engine's default).",
             "- Memory: peak resident set of the benchmark process before the machine probe "
             "(and peak GPU memory where there is a GPU).",
             roofline_line(bandwidths), overhead_line(overheads),
             "- Compare with a saved run: `nox -s bench -- --compare reports/results.json` flags "
             "only changes beyond both runs' measured noise (bench/compare.py).",
             "", "Definitions:", ""]
    lines += [f"- **{LABELS.get(m.name, m.name)}** (`{m.name}`, {m.unit}, {m.better} is better): "
              f"{m.definition}." for m in METRICS.values()]
    return [*lines, ""]


def throughput(results: list[CellResult], problems: list[str], *, grid: list[CellResult] = (),
               plots: list[tuple[str, str]] = (), opening: list[str] = (),
               run_limits: dict[str, RunLimits] | None = None) -> str:
    """The page: `opening` first (the real-shape tables, pages/real_shape.py), then the matrix
    cells' figures, labelled overhead-bound where the weights sit in the cache, each held to
    its run's limits (`run_limits`, by run id) where the run recorded them."""
    run_limits = run_limits or {}
    lines = header("Throughput", results, problems)
    lines += opening
    if opening:
        lines += ["## The matrix's cells: small fixtures, overhead-bound", "",
                  "Below: every matrix cell's bench rung on its tiny fixture (small-llama: 12.5 MiB "
                  "of weights, inside the CPU's last-level cache). A decode step there costs the "
                  "engine's per-step overhead, not memory traffic: these rankings say how light an "
                  "engine's loop is, not how fast it runs a real model (the tables above).", ""]
    lines += [f"![{alt}]({name})" for name, alt in plots]
    lines += [""] if plots else []
    results = held_to_run(results, run_limits)
    lines += limits_lines(results, run_limits)
    lines += generation_cells_section(results) + embedding_cells_section(results)
    lines += grid_section(list(grid))
    lines += roofline_section(list(grid) or results)  # the grid where there is one
    lines += referee_section(results)
    lines += method_section([*results, *grid])
    missing = [r.cell.id for r in results if not r.bench]
    if missing:
        lines += [f"Cells without figures (see COMPATIBILITY.md): {', '.join(missing)}", ""]
    textual = [r.cell.id for r in results if r.cell.kind == "generation" and r.bench
               and not r.bench.find(DECODE_TOKENS_PER_S)]
    if textual:
        lines += ["Generation cells whose bench rung measured the machine only: the engine takes "
                  "no prompt as token ids (the timed prompts are exact-length ids, new every "
                  f"round): {', '.join(textual)}", ""]
    return "\n".join(lines).rstrip() + "\n"
