"""reports/QUANTIZATION.md: per engine and quantization, how far its output is from the float32
reference and what it buys (decode speed, first token, memory, size on disk), beside the same
engine's unquantized cell; and a plot of quality loss against speed with the Pareto front."""

from __future__ import annotations

from pathlib import Path

from bench.stats import MIN_PAIRS, NOISY_CV, distinguishable, paired_ratio_interval, ratio_interval
from core.bench_details import DECODE_TOKENS_PER_S, PAIRED_DECODE_TOKENS_PER_S, SENTENCES_PER_S, TTFT_S
from core.details import PropertyResult, QualityFigures
from core.results import CellResult
from fixtures.catalog import TRAINED
from pages.markdown import CAVEAT, FAIL, NOT_RUN, PASS, header, noisy, table, tool_kl
from pages.sources import cite
from pages.trained_quality import label, trained_section
from pages.verdicts import PROPERTY, in_order, status_of

LORA = "lora_adapter"




NO_FIGURES = QualityFigures()


def figures_of(result: CellResult | None) -> QualityFigures:
    """quantization_quality's figures on the cell's first fixture that has some (all None where
    none was measured)."""
    rung = result.rung("conformance") if result is not None else None
    detail = rung.detail if rung is not None else None
    prop = detail.properties.get(PROPERTY) if detail is not None else None
    found = [f.quality for f in prop.figures.values() if f.quality] if prop is not None else []
    return found[0] if found else NO_FIGURES




def speed_up(result: CellResult, ref: CellResult | None, name: str = DECODE_TOKENS_PER_S,
             **shape) -> str:
    """A speed's median ÷ the unquantized cell's, with its ~95% bootstrap interval over both
    cells' rounds; "not distinguishable" where the interval holds 1. Only where both cells were
    measured in one run (BenchDetail.run): rows of different runs are not set against each
    other. Decode from the cell's own paired rounds where it has them (test_paired.py), marked
    *paired*."""
    if ref is result:
        return "baseline"
    ours = result.bench.find(name, **shape) if result.bench else None
    theirs = ref.bench.find(name, **shape) if ref is not None and ref.bench else None
    if ours is None or theirs is None:
        return "–"
    if not result.bench.run or result.bench.run != ref.bench.run:  # one comparison, one run
        runs = " and ".join(r.bench.run or "a run before run ids" for r in (result, ref))
        return f"– (not set against its baseline: measured in different runs, {runs})" \
            if result.bench.run or ref.bench.run else \
            "– (not set against its baseline: one run each, before runs had ids)"
    ratio, low, high = ratio_interval(ours.samples, theirs.samples)
    text = f"{ratio:.2f}× [{low:.2f}, {high:.2f}] ({len(ours.samples)} / {len(theirs.samples)} rounds)"
    return text if distinguishable(low, high) else f"{text} not distinguishable"


def paired_column(result: CellResult, ref: CellResult | None) -> str:
    """The paired speed-up, ⚠️ where its interval and the two cells' ratio's do not overlap: on a
    fixture this small the figure then depends on how it is measured."""
    paired = paired_speed_up(result)
    if paired is None:
        return "–"
    if paired[1] is None:  # too few pairs for an interval
        return paired[0]
    ours = result.bench.find(DECODE_TOKENS_PER_S)
    theirs = ref.bench.find(DECODE_TOKENS_PER_S) if ref is not None and ref.bench else None
    if ref is None or ref is result or ours is None or theirs is None:
        return paired[0]
    _, low, high = ratio_interval(ours.samples, theirs.samples)
    apart = high < paired[1] or low > paired[2]
    return paired[0] + (f" {CAVEAT} apart from the cells' ratio" if apart else "")


def paired_speed_up(result: CellResult) -> tuple[str, float | None, float | None] | None:
    """The median of quantized ÷ float decode over the cell's own pairs, the two models taking
    turns, with its bootstrap interval over pairs; None where it has none, or only pairs whose
    float model ran in the quantized one's process (they slowed each other: not a speed-up)."""
    detail = result.bench
    sides = [detail.find(PAIRED_DECODE_TOKENS_PER_S, side=side) if detail else None
             for side in ("quantized", "float")]
    if None in sides or "own process" not in str(sides[1].params.get("float", "")):
        return None
    pairs = len(sides[0].samples)
    # pairs whose decode a side could not time: counted by the run where its record says so,
    # else the profile's rounds less the pairs kept
    dropped = sides[0].params.get("rejected_rounds", max(0, (detail.rounds or 0) - pairs))
    counted = f"{pairs} pairs" + (f", {dropped} dropped" if dropped else "")
    if pairs < MIN_PAIRS:
        return f"too few pairs ({counted})", None, None
    ratio, low, high = paired_ratio_interval(sides[0].samples, sides[1].samples)
    text = f"{ratio:.2f}× [{low:.2f}, {high:.2f}] ({counted})"
    return (text if distinguishable(low, high) else f"{text} not distinguishable"), low, high


def median_text(result: CellResult | None, name: str, spec: str, unit: str = "", **shape) -> str:
    """A bench metric's median as the page prints it, cited (pages/sources.py), with its CV
    flag; "–" where the cell did not measure it."""
    metric = result.bench.find(name, **shape) if result is not None and result.bench else None
    return "–" if metric is None else cite(result, metric, "median", spec) + unit + noisy(metric)


def _num(value: float | None, form: str) -> str:
    return "–" if value is None else format(value, form)


def baselines(results: list[CellResult]) -> dict[tuple[str, str], CellResult]:
    """Each engine's unquantized cell on each device: what a quantization is measured against."""
    plain = [r for r in results if r.quantization == "none"]  # float32 last: it wins
    return {(r.cell.engine, r.cell.device): r
            for r in sorted(plain, key=lambda r: r.cell.dtype == "float32")}


def size_text(size: int | None, ref_size: int | None) -> str:
    """Weights on disk, and their share of the unquantized cell's."""
    if not size:
        return "–"
    return f"{size / 2**20:.2f} MiB" + (f" ({size / ref_size:.0%})" if ref_size else "")


def rows_of(results: list[CellResult]) -> list[list[str]]:
    """One row per quantized cell, with its speed-up and size against the engine's "none"."""
    base = baselines(results)
    rows = []
    for r in results:
        figures, rss = figures_of(r), r.bench.peak_rss_mib if r.bench else None
        ref = base.get((r.cell.engine, r.cell.device))
        if ref is not None and ref.cell.fixtures[:1] != r.cell.fixtures[:1]:
            ref = None  # a speed-up and a size only against the same model (SHIPPED: the trained one)
        ref_size = figures_of(ref).weights_bytes
        size = figures.weights_bytes
        rows.append([
            f"`{r.cell.engine}`", label(r), status_of(r),
            kl_text(figures), _num(figures.kl_p99, ".2e"),
            _num(100 * figures.top1, ".1f") + "%" if figures.top1 is not None else "–",
            _num(figures.rms_dp, ".2e"),
            _num(figures.weights_kl_mean, ".2e"), _num(figures.kernel_kl_mean, ".2e"),
            median_text(r, DECODE_TOKENS_PER_S, ",.0f"), speed_up(r, ref), paired_column(r, ref),
            median_text(r, TTFT_S, "ms:.1f", " ms"),
            _num(rss, ",.0f"),
            size_text(size, ref_size)])
    return rows


def kl_referee_section(results: list[CellResult]) -> list[str]:
    """Our KL beside llama-perplexity --kl-divergence's on the same GGUF files."""
    rows = []
    for r in results:
        bench = r.rung("bench")
        ref = bench.detail.referee if bench is not None and bench.detail is not None else None
        if ref is None or not ref.kl:
            continue
        figures, kl = figures_of(r), ref.kl
        ours = figures.kl_mean  # like the tool's: the quantized file through llama.cpp's kernels
        inside = (ours is not None and abs(ours - kl.kl_mean) <= 2 * kl.kl_pm + 1e-12)
        rows.append([f"`{r.cell.engine}`", label(r), _num(ours, ".2e"),
                     _num(figures.weights_kl_mean, ".2e"), tool_kl(kl),
                     (f"{ours / kl.kl_mean:.2f}×" if ours and kl.kl_mean else "–")
                     + ("" if inside else f" {CAVEAT}"),
                     _num(100 * figures.top1, ".1f") + "%" if figures.top1 is not None else "–",
                     f"{100 * kl.top1_agreement:.1f} ± {100 * kl.top1_pm:.1f}%"])
    if not rows:
        return []
    return ["#### Referee: llama-perplexity --kl-divergence", "",
            "llama.cpp's own tool (built from the binding's tree) on the same GGUF files: the "
            "quantized one against the float32 one's logits over the shipped corpus (8 windows "
            "of 128 tokens). It runs the quantized file through llama.cpp's kernels against "
            "float32, so it is set beside our *KL mean*, which does the same (llama.cpp's "
            "quantized run against the float32 reference, kernels included); our *weights' KL* "
            "(the same dequantized weights in a float64 forward pass, no kernels) is shown apart "
            "and compared with nothing. ⚠️: ours outside twice the tool's ± (texts differ: our "
            "prompts' greedy continuations, its corpus).",
            "", table(rows, ["engine", "quantization", "KL mean (ours, kernels included)",
                             "weights' KL (ours)", "llama-perplexity KL", "ours ÷ tool",
                             "top-1 (ours)", "top-1 (tool)"]), ""]


def kl_text(figures: QualityFigures) -> str:
    """KL mean with its 95% bootstrap interval over prompts, where there is one."""
    text = _num(figures.kl_mean, ".2e")
    if figures.kl_mean_low is not None and figures.kl_mean_high is not None:
        text += f" [{figures.kl_mean_low:.1e}, {figures.kl_mean_high:.1e}]"
    return text


def embedding_rows(results: list[CellResult]) -> list[list[str]]:
    """One row per quantized embedder cell: cosine to float32, the known similarity's drift,
    sentences/s and its speed-up over the engine's "none", memory and size."""
    base = baselines(results)
    rows = []
    for r in results:
        figures, ref = figures_of(r), base.get((r.cell.engine, r.cell.device))
        ref_size = figures_of(ref).weights_bytes
        size, detail = figures.weights_bytes, r.bench
        rows.append([
            f"`{r.cell.engine}`", label(r), status_of(r),
            _num(figures.min_cosine, ".5f"), _num(figures.mean_cosine, ".5f"),
            _num(figures.known_drift, ".4f"), median_text(r, SENTENCES_PER_S, ",.0f", batch=32),
            speed_up(r, ref, SENTENCES_PER_S, batch=32),
            _num(detail.peak_rss_mib if detail else None, ",.0f"),
            size_text(size, ref_size)])
    return rows


def lora_rows(results: list[CellResult]) -> list[list[str]]:
    """One row per generation engine that ran the property lora_adapter, from its first cell
    that applied the adapter (else the first that ran the property: its reason)."""
    seen: dict[str, tuple[CellResult, PropertyResult]] = {}
    for r in sorted(results, key=lambda r: (r.quantization not in (None, "none"), r.cell.id)):
        rung = r.rung("conformance")
        prop = rung.detail.properties.get(LORA) if rung is not None and rung.detail else None
        if prop is not None and (r.cell.engine not in seen or
                                 seen[r.cell.engine][1].status == "skip" != prop.status):
            seen[r.cell.engine] = (r, prop)
    rows = []
    for engine, (r, prop) in sorted(seen.items()):
        cases = [f for f, s in prop.cases.items() if s != "skip"]
        figures = prop.figures[cases[0]].lora if cases and cases[0] in prop.figures else None
        verdict = {"pass": PASS, "fail": f"{FAIL} {prop.message.split(']', 1)[-1].strip()[:160]}"
                   }.get(prop.status, f"{NOT_RUN} {prop.message.split(': ', 1)[-1][:200]}")
        against = ("–" if figures is None else
                   f"KL {figures.kl_mean:.2e} (top-1 {100 * figures.top1:.1f}%)"
                   if figures.kl_mean is not None else
                   f"Δ log-prob ≤ {figures.logprob_max_diff:.1e}"
                   if figures.logprob_max_diff is not None else "–")
        rows.append([f"`{engine}`", f"`{r.cell.id}`", verdict, ", ".join(cases) or "–", against,
                     _num(figures.effect_kl_mean if figures else None, ".3f")])
    return rows


def lora_section(results: list[CellResult]) -> list[str]:
    rows = lora_rows(results)
    if not rows:
        return []
    return ["## LoRA adapters", "", "A deterministic rank-8 adapter on every linear layer of the "
            "fixture (`fixtures/lora.py`: written with numpy and safetensors in peft's format, B "
            "non-zero) is set at run time, unmerged, and held to the base weights with it merged, "
            "run in float64 (property `lora_adapter`): greedy ids after 3 prompts (8 tokens each, "
            "a near tie excepted), and along them the engine's logits (KL within the unquantized "
            "bound) or, without logits, its log-probabilities (within its tolerance); removing the "
            "adapter must give the engine's own output back. *Effect*: the mean KL the adapter "
            "moves the reference by (it must be clearly non-zero).", "",
            table(rows, ["engine", "cell", "verdict", "fixtures", "vs merged reference",
                         "effect (KL)"]), ""]


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """Names of the points no other point beats on both speed (higher) and KL (lower)."""
    return [name for name, speed, kl in points
            if not any(s >= speed and k <= kl and (s, k) != (speed, kl) for _, s, k in points)]


def plot(results: list[CellResult], path: Path) -> bool:
    """KL mean against decode tok/s, one point per engine × quantization, the front joined."""
    from pages.plotting import legend_beside, named_points, pyplot, save

    points = []
    for r in results:
        found = r.bench.find(DECODE_TOKENS_PER_S) if r.bench else None
        figures, decode = figures_of(r), found.stats.median if found else None
        if figures.kl_mean is not None and decode:
            points.append((f"{r.cell.engine} {r.quantization}", decode,
                           max(figures.kl_mean, 1e-7)))
    plt = pyplot()
    if plt is None or len(points) < 2:
        return False
    front = set(pareto(points))
    fig, ax = plt.subplots(figsize=(10, 4.8))
    named_points(ax, points)
    line = sorted((s, k) for n, s, k in points if n in front)
    ax.plot([s for s, _ in line], [k for _, k in line], color="C0", lw=1, zorder=2,
            label="Pareto front (faster and closer)")
    ax.set_xlabel("decode tok/s at batch 1 (higher is better)")
    ax.set_ylabel("mean KL from float32, nats (lower is better)")
    ax.set_yscale("log")
    legend_beside(ax)
    ax.set_title("Quantization: quality loss against speed (small-llama)")
    return save(plt, fig, path)


GENERATION_HEAD = ["engine", "quantization", "verdict", "KL mean", "KL p99", "top-1", "RMS Δp",
                   "weights' KL", "kernels' KL", "decode tok/s", "speed-up (two cells)",
                   "speed-up (paired)", "TTFT", "peak RSS MiB",
                   "weights"]
METHOD = ["Each quantization is a cell on the same weights (small-llama: sizes multiples of "
              "256, so llama.cpp's K-quants do not fall back — the written tensor types are "
              "checked), beside its engine's unquantized cell (`none`). Quality is measured from "
              "full next-token distributions, teacher-forced along the float32 reference's "
              "greedy ids (6 prompts, every generated position), against transformers in "
              "float32 (`bench/quality.py`, property `quantization_quality`): mean and p99 KL "
              "divergence, top-1 agreement, RMS change of the reference token's probability. "
              "Each quantization has a declared bound (`QUALITY_BOUNDS`); beyond it the cell "
              "fails. Speed: the bench rung's medians at batch 1 (decode tok/s, time to first "
              f"token; {CAVEAT} CV n% where the rounds spread past {NOISY_CV:.0%}), peak RSS of "
              "the benchmark process, weights on disk (share of `none`). "
              "Speed-up, *two cells*: the decode median ÷ `none`'s cell's, its 95% bootstrap "
              "interval over both cells' rounds (their counts beside it). Speed-up, *paired*: "
              "measured inside the "
              "quantized cell's own run — the same "
              "engine's float32 model loaded in a process of its own (loaded beside the quantized "
              "one in the same process, CTranslate2's float32 model ran far slower than in its "
              "own cell), each round the quantized model's batch-1 answer and then the float "
              "one's, taking turns, on fresh prompts — the median of "
              "the pairs' ratios with its 95% bootstrap interval over pairs and the count of "
              f"pairs (and of rounds dropped), *too few pairs* under {MIN_PAIRS}, *not "
              "distinguishable* where the interval holds 1. Two runs of one configuration in "
              "separate cells have differed by more than their intervals (CTranslate2's numpy1 "
              "and quantnone cells, the same float32 model); a pair's two sides drift together. "
              "⚠️ *apart* where the two intervals do not overlap: small-llama "
              "fits in the last-level cache and a token takes a millisecond or less, so taking "
              "turns with another process moves each side's speed (transformers' bfloat16 model "
              "is slower in pairs than alone) and the figure depends on how it is measured; at a "
              "real shape it does not (llama.cpp's rows agree both ways).",
              "",
              "Where an engine hands its quantized weights over (llama.cpp: its GGUF, "
              "dequantized by gguf; vLLM: its AWQ or GPTQ checkpoint), they also run through a "
              "float64 forward pass (`bench/reference_forward.py`): *weights' KL* is those weights "
              "against float32 — the quantization's own loss — and *kernels' KL* the engine "
              "against them — what its kernels add (8-bit activations in the dot products, a "
              "float16 KV cache), held to `KERNEL_BOUND`, where a kernel bug would show.", "",
              "KL mean comes with its 95% bootstrap interval over the prompts (whole prompts "
              "resampled): two formats whose intervals overlap cannot be told apart on this "
              "fixture. A NaN or infinite figure fails every bound. small-llama's weights are "
              "seeded random, not trained: its next-token distributions are far flatter than a "
              "trained model's, spreading the probability over many tokens that a format's "
              "rounding can move, so its KL here is expected to be larger than the same format "
              "costs trained weights of this shape (expected, not measured: no trained weights "
              "are reached offline). Read the figures to rank formats and engines, not as the "
              "loss a user will see.", ""]


def quantization_page(results: list[CellResult], problems: list[str], plotted: bool) -> str:
    cells = in_order(results)
    lines = [*header("Quantization", cells, problems)]
    lines += trained_section(cells, "Every engine and quantization of the quant selection also "
                             "runs on the trained model, SmolLM2-135M-Instruct")
    lines += ["## Random weights (small-llama)", "", *METHOD]
    if plotted:
        lines += ["![Quality loss against speed, Pareto front marked](quantization.png)", ""]
    # a table holds one model: a cell that runs only the trained model (the shipped GGUF) has its
    # figures in the trained section above, never among small-llama's
    generation = [r for r in cells if r.cell.kind == "generation"
                  and not (r.cell.fixtures and set(r.cell.fixtures) <= set(TRAINED))]
    embedding = [r for r in cells if r.cell.kind == "embedding"]
    if generation:
        lines += ["### Generation", "", table(rows_of(generation), GENERATION_HEAD), ""]
        lines += kl_referee_section(generation)
    if embedding:
        lines += ["### Embeddings", "", "On the real all-MiniLM-L6-v2: each vector's cosine to "
                  "sentence-transformers' float32 one (least and mean over 6 sentences), how far "
                  "the model card's known similarity (0.7553) moved, sentences/s at batch 32.", "",
                  table(embedding_rows(embedding),
                        ["engine", "quantization", "verdict", "min cosine", "mean cosine",
                         "known drift", "sentences/s", "speed-up", "peak RSS MiB", "weights"]),
                  ""]
    lines += lora_section(results)
    lines += ["Run it: `nox -s quant` (the `quant` selection, then the report). In the plot, a "
              "mean KL below 1e-7 is drawn at 1e-7.", ""]
    return "\n".join(lines).rstrip() + "\n"
