"""The real-shape tables at the top of THROUGHPUT.md (`nox -s realsize`): every generation engine,
in each precision it offers, on one real model shape, sorted by decode tok/s at batch 1; what
each costs (weights on disk, peak memory, load and conversion time); and a plot of speed
against memory with its Pareto front.

Read from results/real-shape/<shape>/[<variant>/]<cell id>.json (compat/drive.real_shape).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.stats import NOISY_CV, two_phases
from core import layout
from core.bench_details import (
    DECODE_TOKENS_PER_S,
    ITL_S,
    MEMORY_BANDWIDTH_GB_S,
    PREFILL_TOKENS_PER_S,
    TPOT_S,
    TTFT_S,
    BenchDetail,
    MetricRecord,
)
from core.results import CellResult, load_results
from core.run_limits import DRIFT, RunLimits
from core.run_limits import PREFIX as LIMITS_PREFIX
from core.run_limits import load_all as load_limits
from pages.markdown import CAVEAT, KNOWN, fmt, noisy, speed_label, table, tool_kl
from pages.runs import by_run, run_name
from pages.sources import cite, cite_fraction
from pages.throughput import bandwidth_limit, held_to_limit, ratio_text

PRECISIONS = {"none": "unquantized", "f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0",
              "q4_k_m": "Q4_K_M", "int8": "int8", "int8_float32": "int8 (float32 activations)",
              "int4": "int4", "awq": "AWQ 4-bit", "gptq": "GPTQ 4-bit", "llm_int8": "LLM.int8()",
              "nf4": "NF4", "shipped": "as shipped (Q4_1)"}
VARIANTS = {"all-cores": "every core"}


@dataclass(frozen=True)
class ShapeRun:
    """One cell's bench rung on a real shape; `variant` names a second run of the same cell."""

    shape: str
    variant: str
    result: CellResult
    limits: RunLimits | None = None
    """The limits its run read before its first bench rung and after its last, where recorded."""

    @property
    def run(self) -> str:
        """The id of the run that measured it ("" before runs had ids)."""
        return self.detail.run if self.detail else ""

    @property
    def detail(self) -> BenchDetail | None:
        return self.result.bench

    @property
    def precision(self) -> str:
        quant = self.result.quantization
        return PRECISIONS.get(quant, quant) if quant else "as shipped"

    @property
    def engine(self) -> str:
        label = speed_label(self.result)
        return f"{label}, {VARIANTS.get(self.variant, self.variant)}" if self.variant else label

    def metric(self, name: str, batch: int) -> MetricRecord | None:
        return self.detail.find(name, batch=batch) if self.detail else None

    def median(self, name: str, batch: int) -> float | None:
        """The median of a metric, None where it was not measured or the row is withdrawn."""
        found = self.metric(name, batch)
        return found.stats.median if found and not self.withdrawn else None

    @property
    def withdrawn(self) -> str:
        """Why the row's figures are withdrawn ("" where they stand): its decode rounds fell in
        a slow and a fast phase, so no median of them holds. A CUDA row waits for a device."""
        for batch in (1, 8):
            found = self.metric(DECODE_TOKENS_PER_S, batch)
            split = two_phases(found.samples) if found else None
            if split:
                slow, fast = split
                again = "to be measured again" + (
                    " where a GPU is lent" if self.result.cell.device != "cpu" else "")
                return (f"withdrawn: its batch-{batch} decode rounds fell in two phases "
                        f"({slow[0]:,.1f}–{slow[-1]:,.1f} and {fast[0]:,.1f}–{fast[-1]:,.1f} "
                        f"tok/s), so no median of them holds; {again}")
        return ""


def load_serving(folder: Path) -> list:
    """The load-sweep records of every real shape (results/real-shape/<shape>/serve-bench)."""
    from pages.loadgen import load_records

    return [r for shape_dir in sorted(folder.glob(f"*/{layout.SERVE_BENCH}"))
            for r in load_records(shape_dir)]


def load_real_shapes(folder: Path) -> tuple[list[ShapeRun], list[str]]:
    """Every real-shape result under `folder`, and the files that could not be read."""
    runs: list[ShapeRun] = []
    problems: list[str] = []
    if not folder.is_dir():
        return runs, problems
    for shape_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        recorded = load_limits(shape_dir)
        for path in sorted(shape_dir.rglob("*.json")):
            if layout.SERVE_BENCH in path.relative_to(shape_dir).parts \
                    or path.name.startswith(LIMITS_PREFIX):  # the runs' limits, not a cell's
                continue
            results, bad = load_results([path])
            problems += bad
            variant = "" if path.parent == shape_dir else path.parent.name
            runs += [ShapeRun(shape_dir.name, variant, r,
                              recorded.get(r.bench.run) if r.bench else None) for r in results]
    return runs, problems


def mib(value: float | None) -> str:
    return f"{value / 2**20:,.0f} MiB" if value else "–"


def why_not(run: ShapeRun) -> str:
    """A run without figures: its first failing rung's signature, a timeout in minutes."""
    bench = run.result.rung("bench")
    if bench is not None and bench.status == "not_run":
        return f"➖ not run: {bench.reason}"
    failed = run.result.first_failure
    if failed is None or failed.error is None:
        return "no figures"
    if failed.error.type == "Timeout":
        return f"➖ timed out after {failed.duration_s / 60:.0f} min"
    return f"❌ {failed.name}: {failed.error.signature}"


def median_of(run: ShapeRun, name: str, batch: int, spec: str) -> str:
    """The row's median of a metric, cited (pages/sources.py), with its CV flag."""
    metric = run.metric(name, batch)
    return "–" if metric is None else f"{cite(run.result, metric, 'median', spec)}{noisy(metric)}"


def p50_p99(metric: MetricRecord | None, result: CellResult | None = None) -> str:
    if metric is None:
        return "–"
    if result is None:
        return f"{fmt(metric.stats.median, 's')} / {fmt(metric.stats.p99, 's')}{noisy(metric)}"
    return (f"{cite(result, metric, 'median', 'unit:s')} / "
            f"{cite(result, metric, 'p99', 'unit:s')}{noisy(metric)}")


def probe(run: ShapeRun) -> MetricRecord | None:
    return run.detail.find(MEMORY_BANDWIDTH_GB_S) if run.detail else None


@dataclass(frozen=True)
class TableLimit:
    """The one read bandwidth a table's MBU column divides by, on one device, and the words its
    header names it with."""

    gb_s: float
    named: str


def bandwidth_limits(runs: list[ShapeRun]) -> dict[str, TableLimit]:
    """Per device, the one read bandwidth the table's MBU column divides by: the run's limit
    (core/run_limits.py, read before its first bench rung and after its last) where every row
    comes from one run that recorded it; else the best reading of every row's own probe, with
    the lowest of the rows' bests beside it (⚠️ drifting past DRIFT)."""
    measured = [r for r in runs if r.detail]
    run_limits = measured[0].limits if measured and len({r.run for r in measured}) == 1 else None
    if run_limits is not None and run_limits.bandwidth_gb_s:
        return {run_limits.device: TableLimit(run_limits.bandwidth_gb_s, (
            f"the run's own limit (run {run_limits.run}), the host's DRAM read at "
            f"{run_limits.named()}"))}
    best: dict[str, list[float]] = {}
    for run in runs:
        roof, found = run.detail.roofline if run.detail else None, probe(run)
        if roof and found is not None and found.access == "read":
            best.setdefault(roof.device, []).append(max(found.samples))
    return {device: TableLimit(max(values), rows_named(device, max(values), min(values)))
            for device, values in best.items()}


def rows_named(device: str, best: float, lowest: float) -> str:
    """The limit of rows without a run's limits record: the best of their probes."""
    where = "the host's DRAM" if device == "cpu" else f"{device} memory"
    drift = (f" {CAVEAT} drifting: the rows' own best readings ranged {lowest:.1f}–{best:.1f} "
             f"GB/s, more than {DRIFT:.0%} apart, so MBU compares the bytes the rows read "
             "at one bandwidth, not the machine each row ran on"
             if lowest < best * (1 - DRIFT) else
             f" (the rows' own best readings: {lowest:.1f}–{best:.1f} GB/s)")
    return f"the best read-bandwidth reading of all the rows' probes: {where}, {best:.1f} GB/s{drift}"


def mbu(run: ShapeRun, limits: dict[str, TableLimit], cited: bool = True) -> str:
    """Bytes a token × the decode median ÷ the table's one limit for the row's device (cited
    where a table prints it)."""
    roof = run.detail.roofline if run.detail else None
    rows = run.detail.decode_bounds if run.detail else []
    if not rows:
        return "–"
    if roof.cache_resident:
        return "cache-resident"
    found = probe(run)
    if found is not None and found.access != "read":
        return (held_to_limit(rows[0].fraction, bandwidth_limit(roof))
                + " (of a copy's bandwidth: measured before the probe read)")
    limit = limits.get(roof.device)
    limit_gb_s = limit.gb_s if limit is not None else roof.bandwidth_gb_s
    fraction = roof.weight_bytes_per_token * rows[0].decode_tokens_per_s / (limit_gb_s * 1e9)
    if cited and fraction <= 1:
        return cite_fraction(run.result, run.metric(DECODE_TOKENS_PER_S, 1),
                             roof.weight_bytes_per_token, limit_gb_s * 1e9, roof.device)
    text = held_to_limit(fraction, bandwidth_limit(roof))
    if fraction > 1:  # past the table's limit: say what the row read
        text += (f" ({fraction * limit_gb_s:.1f} GB/s read; the table's limit is "
                 f"{limit_gb_s:.1f} GB/s)")
    return text


def limit_line(limits: dict[str, TableLimit]) -> str:
    """The header line naming the one limit MBU divides by, and whether it drifted."""
    parts = [limit.named for _, limit in sorted(limits.items())]
    return f"MBU divides every row by one limit, {'; '.join(parts)}." if parts else ""


def itl(run: ShapeRun, limits: dict[str, TableLimit]) -> str:
    """ITL p50 / p99 where its gaps can be per token; named per delivery where the smallest gap
    is shorter than reading one token's bytes at the table's bandwidth takes (a stream that hands
    over several tokens at once: its gaps are between deliveries, not tokens)."""
    metric = run.detail.find(ITL_S) if run.detail else None
    roof = run.detail.roofline if run.detail else None
    if metric is None or not metric.samples:
        return "–"
    text = p50_p99(metric)
    if roof is None or roof.cache_resident or roof.device not in limits:
        return text
    floor_s = roof.weight_bytes_per_token / (limits[roof.device].gb_s * 1e9)
    shortest = min(metric.samples)
    if shortest >= floor_s:
        return text
    return (f"per delivery, not per token: {text} ({CAVEAT} gaps down to {fmt(shortest, 's')}, "
            f"below the {fmt(floor_s, 's')} a token's bytes take)")


def cores(run: ShapeRun) -> str:
    busy = run.detail.threads.cores_busy if run.detail else {}
    return " / ".join(f"{v:.1f}" for v in busy.values()) if busy else "–"


def speed_rows(runs: list[ShapeRun]) -> list[list[str]]:
    rows, limits = [], bandwidth_limits(runs)
    for run in runs:
        if run.withdrawn:
            rows.append([run.engine, run.precision, f"{CAVEAT} {run.withdrawn}", *["–"] * 8])
            continue
        if run.detail is None or run.metric(DECODE_TOKENS_PER_S, 1) is None:
            rows.append([run.engine, run.precision, why_not(run) if run.detail is None else
                         "no figures: no batch-1 decode was timed", *["–"] * 8])
            continue
        decode1 = run.median(DECODE_TOKENS_PER_S, 1)
        ref = run.detail.referee
        batch8 = run.metric(DECODE_TOKENS_PER_S, 8)
        rows.append([
            run.engine, run.precision, median_of(run, DECODE_TOKENS_PER_S, 1, ",.1f"),
            median_of(run, DECODE_TOKENS_PER_S, 8, ",.1f") + (
                " (sequential)" if batch8 and batch8.params.get("batching") == "sequential" else ""),
            median_of(run, PREFILL_TOKENS_PER_S, 1, ",.0f"),
            p50_p99(run.metric(TTFT_S, 1), run.result), p50_p99(run.metric(TPOT_S, 1), run.result),
            itl(run, limits), mbu(run, limits), cores(run),
            (f"{ref.prefill_tokens_per_s:,.0f} / {ref.decode_tokens_per_s:,.1f} "
             f"({ratio_text(run.median(PREFILL_TOKENS_PER_S, 1), ref.prefill_tokens_per_s)} / "
             f"{ratio_text(decode1, ref.decode_tokens_per_s)})") if ref else "–"])
    return rows


def cost_rows(runs: list[ShapeRun]) -> list[list[str]]:
    rows = []
    for run in runs:
        d = run.detail
        facts = d.weights if d else None
        made = [c for c in (facts.conversions if facts else []) if c.seconds is not None]
        kl = d.referee.kl if d and d.referee and d.referee.kl else None
        rows.append([
            run.engine, run.precision, mib(facts.bytes if facts else None),
            (f"{d.peak_rss_mib:,.0f} MiB" + (" (its conversion in it)" if any(
                c.made_here for c in (facts.conversions if facts else [])) else ""))
            if d and d.peak_rss_mib else "–",
            f"{facts.load_s:.1f} s" if facts and facts.load_s is not None else "–",
            ", ".join(f"{c.converter} {c.seconds:.0f} s ({mib(c.bytes)})" for c in made) or "–",
            f"KL mean {tool_kl(kl)}, top-1 {kl.top1_agreement:.1%}" if kl else "–",
            facts.note if facts and facts.note else ""])
    return rows


def ordered(runs: list[ShapeRun]) -> list[ShapeRun]:
    """Fastest decode at batch 1 first; runs without figures last, by name."""
    return sorted(runs, key=lambda r: (-(r.median(DECODE_TOKENS_PER_S, 1) or -1), r.engine,
                                       r.precision))


def serving_lines(records: list, shape: str) -> list[str]:
    """The load sweep of the servers on the shape (`nox -s serve-bench -- --fixture SHAPE`), as
    SERVING.md shows the small fixture's, under a heading of this section."""
    from pages.loadgen import load_section

    mine = [r for r in records if r.fixture == shape]
    if not mine:
        return []
    lines = load_section(mine, None)
    end = lines.index("### Method") if "### Method" in lines else len(lines)
    return [f"#### Serving {shape} under load", "", *lines[2:end]]


SPEED_METHOD = (
    "seeded random weights, the real vocabulary (the tokenizer uses 512 of its ids), every "
    "engine's format converted from the same safetensors by the engine's own tools. Batch 1 "
    "decodes 31 tokens after a 512-token prompt (prefill timed to the first token, cache-cold: "
    "every prompt new); at batch 1 on an engine that streams, TTFT and decode come from one "
    "streamed call (its first delta, then the rest); batch 8, and an engine with no stream, "
    "time the first token and the whole answer in two calls, a round whose first call outlasts "
    "its second dropped, never clamped; batch 8 decodes after 32-token prompts, as one batch "
    "where the engine has one (llama.cpp: each prompt a sequence of one llama_batch; "
    "onnxruntime-genai and OpenVINO GenAI batch rows of one length); *sequential* marks an "
    "engine that runs them one after another (mistral.rs), not a batch. Medians of 5 "
    f"rounds after 1 ({CAVEAT} CV n%: the rounds spread past {NOISY_CV:.0%}) "
    "warm-up; TTFT and TPOT at batch 1, median / p99 (of 5 rounds, so about the slowest); ITL "
    "over every gap of 5 streams of their own (their prompts longer than the other columns' "
    "512 tokens: each record's `itl_s` names its length), *per delivery* where a gap is shorter "
    "than reading one token's bytes can take: the stream hands tokens over in bursts. MBU: the "
    "bytes one batch-1 decode step reads (read from the "
    "engine's own files where its adapter can — GGUF, ONNX: every tensor once, a table that is "
    "only gathered left out — else the float32 count scaled to its files' size) times tok/s over "
    "one read bandwidth for the whole table, named above it: the best reading of every row's "
    "probe of the engine's device (a CPU row: the host's DRAM, a sum over an array far past "
    "the cache on every core; a CUDA row: the GPU's own memory, never the host's). Cores busy: "
    "the CPU seconds of the engine's process tree over wall seconds, batch 1 / batch 8. Own "
    "tool: llama-bench's prefill / decode on the same file and shape, and ours over it.")
COST_METHOD = (
    "What each costs. Weights: the engine's own files on disk. Peak RSS: the bench process's "
    "(the engine's own process tree where it runs one is not in it: vLLM). Load: load() in the "
    "bench process. Conversion: the engine's own tool making its format from the safetensors, "
    "once (cached by content). Quality on this shape: llama-perplexity's KL of a quantized GGUF "
    "against the float32 one (the other engines' quality is on QUANTIZATION.md, at the small "
    "shape).")
SPEED_HEAD = ["engine", "precision", "decode tok/s, batch 1", "decode tok/s, batch 8",
              "prefill tok/s (512)", "TTFT p50 / p99", "TPOT p50 / p99", "ITL p50 / p99", "MBU",
              "cores busy", "own tool (ours ÷ it)"]
COST_HEAD = ["engine", "precision", "weights", "peak RSS", "load", "conversion",
             "quality (llama-perplexity)", "format"]


def real_shape_section(runs: list[ShapeRun], plot: str | None = None,
                       serving: list | None = None) -> list[str]:
    """THROUGHPUT.md's opening: per shape, the speed table and the cost table, and the servers
    under load where they were measured on it."""
    if not runs:
        return []
    lines = ["## On a real shape: which engine, which precision", ""]
    for shape in sorted({r.shape for r in runs}):
        lines += shape_section(shape, ordered([r for r in runs if r.shape == shape]), plot)
        lines += agreement_lines(runs, shape)
        lines += serving_lines(serving or [], shape)
    return lines


def agreement_lines(runs: list[ShapeRun], trained: str) -> list[str]:
    """A trained model's batch-1 decode against the random weights of its shape, engine by
    engine and precision: the ratio of medians with its 95% bootstrap interval over both runs'
    rounds, "within noise" where that holds 1. Same shapes, same files' sizes: only the weights'
    values differ, which a dense kernel does not see."""
    from bench.stats import distinguishable, ratio_interval
    from fixtures.catalog import TRAINED

    shape = TRAINED[trained].shape if trained in TRAINED else ""
    # one comparison, one run: a trained row is set only against random weights of its own run
    random = {(r.engine, r.precision, r.run): r for r in runs if r.shape == shape and r.run}
    rows = []
    for run in ordered([r for r in runs if r.shape == trained]):
        other = random.get((run.engine, run.precision, run.run))
        if run.withdrawn or other is None or other.withdrawn:
            continue
        ours, theirs = run.metric(DECODE_TOKENS_PER_S, 1), other and other.metric(
            DECODE_TOKENS_PER_S, 1)
        if ours is None or theirs is None:
            continue
        ratio, low, high = ratio_interval(ours.samples, theirs.samples)
        rows.append([run.engine, run.precision, f"{ours.stats.median:,.1f}",
                     f"{theirs.stats.median:,.1f}",
                     f"{ratio:.2f}× [{low:.2f}, {high:.2f}] ({len(ours.samples)} / "
                     f"{len(theirs.samples)} rounds)",
                     "apart" if distinguishable(low, high) else "within noise",
                     f"{read_bandwidth(run)} / {read_bandwidth(other)}"])
    if not rows:
        return []
    return [f"#### {trained} against {shape}'s random weights", "",
            "Batch-1 decode tok/s on the trained model and on seeded random weights of the same "
            "config, both measured in one run (rows of different runs are never set against each "
            "other here): the ratio of medians with its 95% bootstrap interval over both rows' "
            "rounds. Only the weights' values differ: the same shapes, the same bytes read a "
            "token, the same prompt lengths. Each row's own read-bandwidth probe is shown.", "",
            table(rows, ["engine", "precision", "trained", "random", "trained ÷ random",
                         "verdict", "read GB/s (trained / random run)"]), ""]


def read_bandwidth(run: ShapeRun) -> str:
    """The median of the run's own read-bandwidth probe, GB/s."""
    found = run.detail.find(MEMORY_BANDWIDTH_GB_S, access="read") if run.detail else None
    return f"{found.stats.median:.1f}" if found else "–"


def shape_section(shape: str, mine: list[ShapeRun], plot: str | None) -> list[str]:
    """The shape's speed and cost tables: one pair per run, so that the rows a table sets
    against each other share a run and its one limit (a row reused from an earlier run is not
    compared with fresh ones)."""
    from fixtures.catalog import REAL_SHAPES, TRAINED

    about = TRAINED[shape].source if shape in TRAINED else REAL_SHAPES.get(shape, shape)
    lines = [f"### {shape}", "", f"{about}: {SPEED_METHOD}", ""]
    groups = by_run(mine, lambda r: r.run)  # the newest run first
    for group in groups:
        if len(groups) > 1:
            lines += [f"#### {run_name(group[0].run)} ({len(group)} rows)", ""]
        lines += run_tables(group, plot if group is groups[0] else None)
    return lines


def run_tables(mine: list[ShapeRun], plot: str | None) -> list[str]:
    """One run's rows: the fastest, the limit MBU divides by, the speed and the cost tables."""
    measured = [r for r in mine if r.median(DECODE_TOKENS_PER_S, 1)]
    limits, lines = bandwidth_limits(mine), []
    if measured:
        best = measured[0]
        lines += [f"Fastest batch-1 decode: {best.engine} {best.precision}, "
                  f"{best.median(DECODE_TOKENS_PER_S, 1):,.1f} tok/s at MBU "
                  f"{mbu(best, limits, cited=False)}.", ""]
    if limit_line(limits):
        lines += [limit_line(limits), ""]
    lines += [table(speed_rows(mine), SPEED_HEAD), ""]
    if plot:
        lines += [f"![Decode tok/s against memory, with the Pareto front]({plot})", ""]
    return [*lines, COST_METHOD, "", table(cost_rows(mine), COST_HEAD), ""]


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other beats on both axes (less memory x, more speed y), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_plot(runs: list[ShapeRun], path: Path) -> bool:
    """Decode tok/s at batch 1 against the weights on disk, per shape, the Pareto front drawn."""
    from pages.plotting import legend_beside, named_points, pyplot, save

    plt = pyplot()
    shapes = sorted({r.shape for r in runs})
    data = {s: [(r, r.detail.weights.bytes / 2**20, r.median(DECODE_TOKENS_PER_S, 1))
                for r in runs if r.shape == s and r.detail and r.detail.weights
                and r.detail.weights.bytes and r.median(DECODE_TOKENS_PER_S, 1)] for s in shapes}
    data = {s: rows for s, rows in data.items() if rows}
    if plt is None or not data:
        return False
    fig, axes = plt.subplots(1, len(data), squeeze=False, figsize=(10.5 * len(data), 5.5))
    for ax, (shape, rows) in zip(axes[0], data.items(), strict=True):
        xs, ys = [x for _, x, _ in rows], [y for _, _, y in rows]
        named_points(ax, [(f"{run.engine.replace('`', '').replace(KNOWN + ' ', '')} "
                           f"{run.precision}", x, y) for run, x, y in rows])  # no ⛔ glyph
        front = pareto(list(zip(xs, ys)))
        ax.plot([xs[i] for i in front], [ys[i] for i in front], color="#c44e52", zorder=2,
                label="Pareto front: no other row is both smaller and faster")
        ax.set_xscale("log")
        ax.set_xlabel("weights on disk (MiB, log)")
        ax.set_ylabel("decode tok/s, batch 1 (median)")
        ax.set_title(shape)
        ax.grid(True, alpha=0.3)
        legend_beside(ax)
    return save(plt, fig, path)

