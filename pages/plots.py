"""PNG plots linked from THROUGHPUT.md (matplotlib, headless). Each returns False when there
is nothing to draw or matplotlib is missing, and the page then links nothing."""

from __future__ import annotations

from pathlib import Path

from core.bench_details import DECODE_TOKENS_PER_S, ITL_S, SENTENCES_PER_S, TTFT_S
from core.results import CellResult
from pages.markdown import engine_label
from pages.plotting import pyplot, save
from pages.throughput import LABELS


def name(r: CellResult) -> str:
    return f"{engine_label(r).replace('`', '')} · {r.cell.env}"


def panels_of(results: list[CellResult], metrics: tuple[str, ...]) -> list[tuple[str, list]]:
    """[(metric, [(cell label, metric record), ...]), ...] for the metrics some cell measured."""
    panels = []
    for metric in metrics:
        rows = [(name(r), m) for r in results if r.bench
                for m in [r.bench.find(metric)] if m]
        if rows:
            panels.append((metric, rows))
    return panels


def throughput_plot(results: list[CellResult], path: Path) -> bool:
    """Per cell: decode tok/s and sentences/s, median bar with min-max whiskers."""
    plt = pyplot()
    panels = panels_of(results, (DECODE_TOKENS_PER_S, SENTENCES_PER_S))
    if plt is None or not panels:
        return False
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(9, 1.5 + 0.4 * sum(len(rows) for _, rows in panels)))
    for ax, (metric, rows) in zip(axes[:, 0], panels, strict=True):
        med = [m.stats.median for _, m in rows]
        low = [m.stats.median - m.stats.min for _, m in rows]
        high = [m.stats.max - m.stats.median for _, m in rows]
        ax.barh([n for n, _ in rows], med, xerr=[low, high], color="#4c72b0", ecolor="#333333",
                capsize=3)
        ax.set_xlabel(f"{LABELS[metric]} ({rows[0][1].unit}); bar = median, whiskers = min-max")
        ax.invert_yaxis()
    return save(plt, fig, path)


def latency_plot(results: list[CellResult], path: Path) -> bool:
    """Distributions: inter-token latency and time to first token, raw samples per cell."""
    plt = pyplot()
    panels = panels_of(results, (ITL_S, TTFT_S))
    if plt is None or not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(5 * len(panels), 1.5 + 0.45 * max(len(r) for _, r in panels)))
    for ax, (metric, rows) in zip(axes[0], panels, strict=True):
        ax.boxplot([[s * 1000 for s in m.samples] for _, m in rows], orientation="horizontal",
                   tick_labels=[n for n, _ in rows], whis=(1, 99), showfliers=True)
        ax.set_xscale("log")
        ax.set_xlabel(f"{LABELS[metric]} (ms, log); box = quartiles, whiskers = p1-p99")
        ax.invert_yaxis()
    return save(plt, fig, path)


def grid_plot(grid: list[CellResult], path: Path) -> bool:
    """The grid: decode tok/s against batch size per input length; sentences/s against batch."""
    plt = pyplot()
    gen = [r for r in grid if r.bench and r.cell.kind == "generation"]
    emb = [r for r in grid if r.bench and r.cell.kind == "embedding"]
    panels = [p for p in (("generation", gen), ("embedding", emb)) if p[1]]
    if plt is None or not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(6.5 * len(panels), 4.5))
    for ax, (kind, runs) in zip(axes[0], panels, strict=True):
        metric, key, of = ((DECODE_TOKENS_PER_S, "input_tokens", lambda m: m.input_tokens)
                           if kind == "generation" else (SENTENCES_PER_S, "input", lambda m: m.input))
        for r in runs:
            ms = [m for m in r.bench.metrics if m.name == metric]
            for value in dict.fromkeys(of(m) for m in ms):
                points = sorted((m.batch, m.stats.median) for m in ms if of(m) == value)
                ax.plot(*zip(*points), marker="o", label=f"{r.cell.engine} ({key} {value})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(f"{LABELS[metric]} (median)")
        ax.legend(fontsize=7)
    return save(plt, fig, path)
