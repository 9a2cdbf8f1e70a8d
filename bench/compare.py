"""Compare a run's benchmark figures with a saved baseline, metric by metric.

    python -m bench.compare BASELINE [RESULTS_DIR] [--out reports/BENCH_COMPARE.md]
    python -m bench.compare --serving OLD_DIR NEW_DIR     (nox -s serve-bench -- --compare DIR)
    python -m bench.compare --endpoint OLD.json NEW.json  (nox -s endpoint -- --compare ...)

BASELINE is a merged reports/results.json or a folder of cell result files; with --serving,
both are folders of serve-bench records (results/serve-bench/); with --endpoint, two results of
`nox -s endpoint` (results/endpoint/), whose property verdicts are compared too.
A change is flagged only when it exceeds the measured noise of both runs:
|median_new - median_old| > NOISE_K x max(MAD_old, MAD_new) x 1.4826 (the
median absolute deviation scaled to a standard deviation). The direction of
"better" is each metric's own ("higher" for tokens/s, "lower" for latency).
Comparisons across machines or package versions are warned about, not refused.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.metrics import BenchInputError, check_metric
from core.bench_details import MetricRecord
from core.results import SCHEMA_VERSION, CellResult, SchemaError, load_results

NOISE_K = 3.0
MAD_TO_SIGMA = 1.4826


class BaselineError(ValueError):
    """A baseline that cannot be compared: missing, corrupt, or of another schema."""


@dataclass(frozen=True)
class Change:
    """One metric of one cell, old against new."""

    cell: str
    metric: str
    unit: str
    better: str
    old: float
    new: float
    noise: float
    """The threshold used: NOISE_K x the larger scaled MAD of the two runs."""

    @property
    def delta(self) -> float:
        return (self.new - self.old) / self.old if self.old else 0.0

    @property
    def verdict(self) -> str:
        if math.isnan(self.noise):
            return "no noise band (one sample a run)"
        if abs(self.new - self.old) <= self.noise:
            return "within noise"
        improved = (self.new > self.old) == (self.better == "higher")
        return "better" if improved else "worse"


def mad(samples: list[float]) -> float:
    median = statistics.median(samples)
    return statistics.median(abs(s - median) for s in samples)


def load_baseline(path: Path) -> list[CellResult]:
    """Cell results from a merged results.json or a results folder; refuses anything else."""
    if path.is_dir():
        results, problems = load_results(sorted(path.glob("*.json")))
        if problems:
            raise BaselineError(f"baseline {path}: unreadable result files: {problems}")
        return results
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError(f"baseline {str(path)!r} does not exist") from None
    except (OSError, ValueError) as exc:
        raise BaselineError(f"baseline {path} is not valid JSON ({exc}); refusing to compare") from exc
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        raise BaselineError(f"baseline {path} is not a merged results.json (no 'cells' list)")
    try:
        return [CellResult.from_dict(c) for c in cells]
    except SchemaError as exc:
        raise BaselineError(f"baseline {path}: {exc} (this infermatrix writes schema "
                            f"{SCHEMA_VERSION})") from exc
    except (TypeError, KeyError) as exc:
        raise BaselineError(f"baseline {path} is corrupt ({exc}); refusing to compare") from exc


def metrics_of(result: CellResult) -> dict[str, MetricRecord]:
    rung = result.rung("bench")
    if rung is None or rung.status != "pass" or rung.detail is None:
        return {}
    return {metric_key(m): m for m in rung.detail.metrics}


def metric_key(metric: MetricRecord) -> str:
    """"decode_tokens_per_s (batch 1, input_tokens 128, new_tokens 32)": a metric at its shape."""
    shape = ", ".join(f"{k} {v}" for k, v in metric.params.items())
    return f"{metric.name} ({shape})" if shape else metric.name


def compare(old: list[CellResult], new: list[CellResult],
            only: tuple[str, ...] = ()) -> tuple[list[Change], list[str]]:
    """Changes for every metric both runs measured (or only those named), and warnings about
    what differs between the runs."""
    before = {r.cell.id: r for r in old}
    changes, warnings = [], []
    for result in new:
        cid, base = result.cell.id, before.get(result.cell.id)
        if base is None:
            continue
        if base.machine != result.machine:
            warnings.append(f"{cid}: measured on another machine "
                            f"({base.machine.cpu} vs {result.machine.cpu})")
        moved = sorted(n for n in result.cell.key_packages
                       if base.versions.get(n) != result.versions.get(n))
        if moved:
            pairs = ", ".join(f"{n} {base.versions.get(n)} → {result.versions.get(n)}" for n in moved)
            warnings.append(f"{cid}: package versions differ: {pairs}")
        old_metrics = metrics_of(base)
        for name, metric in metrics_of(result).items():
            if name not in old_metrics or (only and metric.name not in only):
                continue
            a, b = old_metrics[name].samples, metric.samples
            noise = NOISE_K * MAD_TO_SIGMA * max(mad(a), mad(b))
            changes.append(Change(cid, name, metric.unit, metric.better,
                                  statistics.median(a), statistics.median(b), noise))
    return changes, warnings


def serving_records(folder: Path) -> dict[str, CellResult]:
    """cell id -> serve-bench result (its one rung: core/details.ServeBenchDetail), from a folder
    of them; a file that is not one is an error naming it."""
    if not folder.is_dir():
        raise BaselineError(f"serve-bench folder {str(folder)!r} does not exist")
    results, problems = load_results(sorted(folder.glob("*.json")))
    if problems:
        raise BaselineError(f"{folder}: not serve-bench records: {'; '.join(problems)}")
    return {r.cell.id: r for r in results if r.rung("serve_bench") is not None}


def compare_serving(old: dict[str, CellResult], new: dict[str, CellResult],
                    only: tuple[str, ...] = ()) -> tuple[list[Change], list[str]]:
    """The same for serve-bench records: every metric of every load both runs measured."""
    changes, warnings = [], []
    for cid, result in new.items():
        base = old.get(cid)
        if base is None:
            continue
        if base.machine != result.machine:
            warnings.append(f"{cid}: measured on another machine")
        before = {serving_key(m): m for run in base.rung("serve_bench").detail.runs
                  for m in run.metrics}
        for run in result.rung("serve_bench").detail.runs:
            for metric in run.metrics:
                key = serving_key(metric)
                if key not in before or (only and metric.name not in only):
                    continue
                a, b = before[key].samples, metric.samples
                noise = (NOISE_K * MAD_TO_SIGMA * max(mad(a), mad(b)) if min(len(a), len(b)) > 2
                         else math.nan)
                changes.append(Change(cid, key, metric.unit, metric.better,
                                      statistics.median(a), statistics.median(b), noise))
    return changes, warnings


def endpoint_result(path: Path) -> CellResult:
    """One result of `nox -s endpoint`, or an error naming the file."""
    results, problems = load_results([path]) if path.is_file() else ([], [f"{path}: no such file"])
    if problems or not results or results[0].rung("endpoint") is None:
        raise BaselineError(f"{path}: not a result of nox -s endpoint"
                            + (f" ({'; '.join(problems)})" if problems else ""))
    return results[0]


def verdict_changes(old: CellResult, new: CellResult) -> list[str]:
    """Every property whose verdict differs between two runs of an endpoint, with the new
    run's message."""
    lines = []
    for suite in ("api", "conformance"):
        rungs = [r.rung(suite) for r in (old, new)]
        before, after = ({} if r is None or r.detail is None else r.detail.properties for r in rungs)
        for name in sorted(before.keys() | after.keys()):
            a, b = (getattr(p.get(name), "status", "absent") for p in (before, after))
            if a != b:
                why = getattr(after.get(name), "message", "")
                lines.append(f"`{name}` ({suite}): {a} → {b}" + (f": {why[:200]}" if why else ""))
    return lines


def serving_key(metric: MetricRecord) -> str:
    return f"{metric.name} ({metric.params.get('load', '')})"


def render(changes: list[Change], warnings: list[str], baseline: Path) -> str:
    from tabulate import tabulate

    rows = [[f"`{c.cell}`", c.metric, f"{c.old:,.4g} {c.unit}", f"{c.new:,.4g} {c.unit}",
             f"{c.delta:+.1%}", f"±{c.noise:,.3g}", c.verdict] for c in changes]
    lines = ["# Benchmark comparison", "", f"Baseline: `{baseline}`. A change counts only beyond "
             f"{NOISE_K:g} x the larger MAD-based spread of the two runs.", ""]
    if warnings:
        lines += ["**Warnings** (the runs are not like for like):", "",
                  *(f"- {w}" for w in warnings), ""]
    lines += [tabulate(rows, ["cell", "metric", "baseline", "this run", "change", "noise band",
                              "verdict"], tablefmt="github", disable_numparse=True), ""]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nox -s bench -- --compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("baseline", type=Path)
    p.add_argument("results", type=Path, nargs="?", default=Path("results"))
    p.add_argument("--out", type=Path, default=Path("reports") / "BENCH_COMPARE.md")
    p.add_argument("--metric", action="append", default=[], help="only this metric (repeatable)")
    p.add_argument("--serving", action="store_true",
                   help="BASELINE and RESULTS are folders of serve-bench records")
    p.add_argument("--endpoint", action="store_true",
                   help="BASELINE and RESULTS are two results of nox -s endpoint")
    return p


def endpoint_changes(args: argparse.Namespace) -> tuple[list[Change], list[str], list[str]]:
    """Two runs of one endpoint: its load figures' changes, warnings, and verdicts that changed."""
    old, new = endpoint_result(args.baseline), endpoint_result(args.results)
    if old.rung("endpoint").detail.url != new.rung("endpoint").detail.url:
        print(f"warning: {old.rung('endpoint').detail.url} against "
              f"{new.rung('endpoint').detail.url}", file=sys.stderr)
    if new.rung("serve_bench").detail is None or old.rung("serve_bench").detail is None:
        return [], [], verdict_changes(old, new)
    changes, warnings = compare_serving({new.cell.id: old}, {new.cell.id: new}, tuple(args.metric))
    return changes, warnings, verdict_changes(old, new)


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.endpoint and args.out == cli.get_default("out"):
        args.out = Path("reports") / "ENDPOINT_COMPARE.md"
    try:
        for name in args.metric:
            check_metric(name)
    except BenchInputError as exc:
        cli.error(str(exc))
    verdicts: list[str] = []
    try:
        if args.endpoint:
            changes, warnings, verdicts = endpoint_changes(args)
        elif args.serving:
            changes, warnings = compare_serving(serving_records(args.baseline),
                                                serving_records(args.results), tuple(args.metric))
        else:
            changes, warnings = compare(load_baseline(args.baseline), load_baseline(args.results),
                                        tuple(args.metric))
    except BaselineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not changes and not args.endpoint:
        print(f"error: no metric of {args.results} is in the baseline {args.baseline}",
              file=sys.stderr)
        return 2
    text = render(changes, warnings, args.baseline)
    if args.endpoint:
        text += "\n".join(["## Verdicts that changed", "", *(f"- {v}" for v in verdicts or ["none"]), ""])
    args.out.write_text(text, encoding="utf-8")
    print(text)
    worse = [c for c in changes if c.verdict == "worse"]
    return 1 if worse or any("→ fail" in v for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
