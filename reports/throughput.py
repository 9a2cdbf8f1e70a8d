"""reports/THROUGHPUT.md: the benchmark figures, their spread, and how they were measured."""

from __future__ import annotations

from bench.stats import NOISY_CV
from compat.results import CellResult
from reports.markdown import CAVEAT, KINDS, header, table


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.2f} ms"
    return f"{value:,.1f} {unit}"


def figure(metric: dict) -> tuple[str, str]:
    """("median unit", "min–max, CV x%[, noisy]") of one metric."""
    s, unit = metric["stats"], metric["unit"]
    spread = f"{fmt(s['min'], unit)} – {fmt(s['max'], unit)}, CV {s['cv']:.1%}, n={s['n']}"
    if s["cv"] > NOISY_CV:
        spread += f" {CAVEAT} noisy"
    return f"**{fmt(s['median'], unit)}**", spread


METRIC_LABELS = {"decode_tokens_per_s": "decode tok/s", "ttft_s": "TTFT",
                 "sentences_per_s": "sentences/s"}


def bench_of(result: CellResult) -> dict | None:
    rung = result.rung("bench")
    return rung.detail if rung is not None and rung.status == "pass" else None


def workload(result: CellResult) -> str:
    detail = bench_of(result)
    params = ", ".join(f"{k} {v}" for k, v in detail["metrics"][0]["params"].items())
    return f"fixture {detail['fixture']} ({params})"


def throughput(results: list[CellResult], problems: list[str], *, plotted: bool = False) -> str:
    lines = header("Throughput", results, problems)
    if plotted:
        lines += ["![Medians with min-max whiskers, per cell and metric](throughput.png)", ""]
    lines += [
        "## Method", "",
        "- Every figure is the **median** of the timed rounds (15 by default, never fewer "
        "than 5) after 2 untimed warm-up rounds; "
        "the spread column gives min – max and the coefficient of variation (CV = stdev / mean). "
        f"CV above {NOISY_CV:.0%} is marked {CAVEAT} noisy. Raw samples are in each cell's JSON.",
        "- **Decode tokens/s** (batch 1, EOS ignored): (N − 1) / (T_N − T_1), where T_N is the "
        "wall time of one generate() of N new tokens and T_1 of one token — the tokens after "
        "the first over the time after the first.",
        "- **TTFT**: wall time of generate() with max_new_tokens = 1 (prefill + first token).",
        "- **Sentences/s**: batch size / wall time of one embed() call on a fixed mix of "
        "sentences (batch 32).",
        "- Compare with a saved run: `nox -s bench -- --compare reports/results.json` flags "
        "changes beyond both runs' measured noise (bench/compare.py).",
        "- Token counts come from the engine's own ids. Tiny fixtures measure the engine's "
        "overhead, not a real model's speed.", ""]
    for kind, title in KINDS:
        cells = [r for r in results if r.cell["kind"] == kind and bench_of(r)]
        names = list(dict.fromkeys(m["name"] for r in cells for m in bench_of(r)["metrics"]))
        if not names:
            continue
        rows = []
        for r in cells:
            detail = bench_of(r)
            by_name = {m["name"]: m for m in detail["metrics"]}
            figures = [cell for n in names
                       for cell in (figure(by_name[n]) if n in by_name else ("", ""))]
            rows.append([f"`{r.cell['engine']}`", r.cell["env"], *figures,
                         f"{detail['peak_rss_mib']:,.0f} MiB"])
        head = ["engine", "environment",
                *(h for n in names for h in (METRIC_LABELS.get(n, n), "spread")), "peak RSS"]
        workloads = {workload(r) for r in cells}
        lines += [f"## {title}", "", f"Workload: {'; '.join(sorted(workloads))}.", "",
                  table(rows, head), ""]
    missing = [r.cell["id"] for r in results if (r.rung("bench") or r.rungs[0]).status != "pass"]
    if missing:
        lines += [f"Cells without figures (see COMPATIBILITY.md): {', '.join(missing)}", ""]
    return "\n".join(lines).rstrip() + "\n"


def plot(results: list[CellResult], path) -> bool:
    """Medians with min-max whiskers, one panel per metric; False where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series: dict[str, list[tuple[str, dict]]] = {}
    for r in results:
        for m in (bench_of(r) or {}).get("metrics", []):
            series.setdefault(m["name"], []).append((f"{r.cell['engine']} · {r.cell['env']}", m))
    if not series:
        return False
    fig, axes = plt.subplots(len(series), 1, figsize=(9, 1.2 + 0.45 * max(map(len, series.values()))
                                                      * len(series)), squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], series.items(), strict=True):
        labels = [label for label, _ in rows]
        med = [m["stats"]["median"] for _, m in rows]
        low = [m["stats"]["median"] - m["stats"]["min"] for _, m in rows]
        high = [m["stats"]["max"] - m["stats"]["median"] for _, m in rows]
        unit = rows[0][1]["unit"]
        ax.barh(labels, med, xerr=[low, high], color="#4c72b0", ecolor="#333333", capsize=3)
        ax.set_xlabel(f"{METRIC_LABELS.get(name, name)} ({unit}); bar = median, whiskers = min-max")
        ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
