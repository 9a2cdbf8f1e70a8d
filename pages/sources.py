"""Where a page's figures come from: each measured figure a page prints is cited as it is
formatted (the record file, the metric and its shape, the statistic, the format), and the
renderer writes the citations beside the page (THROUGHPUT.md -> THROUGHPUT.sources.json), in the
page's order. `python -m pages.audit` reads them back: each figure recomputed from the raw
samples of its record, and found on the page where it was printed (a figure edited by hand, or a
record whose samples changed, is a finding).

    with citing() as cited:         # while one page is built
        text = cite(result, metric, "median", ",.1f")
    write_sources(out / "THROUGHPUT.md", cited)
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from pathlib import Path

from core.bench_details import MetricRecord
from core.results import CellResult

SUFFIX = ".sources.json"
STATS = ("median", "p90", "p99", "min", "max")
"""The statistics a citation may name (bench/stats.Stats fields, recomputed from the samples)."""

_CITED: contextvars.ContextVar[list[dict] | None] = contextvars.ContextVar("cited", default=None)


def formatted(value: float, spec: str) -> str:
    """A figure as the page prints it: a Python format spec (",.1f"), or "unit:U" for the
    throughput tables' `fmt` (seconds as ms or s, rates with their unit)."""
    if spec.startswith("unit:"):
        from pages.throughput import fmt

        return fmt(value, spec.removeprefix("unit:"))
    return f"{value:{spec}}"


def cite(result: CellResult, metric: MetricRecord, stat: str, spec: str) -> str:
    """`stat` of `metric` formatted with `spec`, cited where a page is being built."""
    if stat not in STATS:
        raise ValueError(f"stat {stat!r} is not one of {', '.join(STATS)}")
    text = formatted(getattr(metric.stats, stat), spec)
    cited = _CITED.get()
    source = getattr(result, "source", "")
    if cited is not None and source:
        cited.append({"text": text, "record": record_name(source), "metric": metric.name,
                      "params": dict(metric.params), "stat": stat, "format": spec})
    return text


@contextlib.contextmanager
def citing() -> Iterator[list[dict]]:
    """Collect the citations made while one page is built."""
    cited: list[dict] = []
    token = _CITED.set(cited)
    try:
        yield cited
    finally:
        _CITED.reset(token)


def sources_path(page: Path) -> Path:
    return page.with_name(page.name.removesuffix(".md") + SUFFIX)


def write_sources(page: Path, cited: list[dict]) -> None:
    """The page's citations beside it (none: no file, and an old one removed)."""
    from core.results import write_atomic

    path = sources_path(page)
    if not cited:
        path.unlink(missing_ok=True)
        return
    write_atomic(path, json.dumps({"page": page.name, "figures": cited}, indent=1) + "\n")


def record_name(path: Path) -> str:
    """A record's path as a citation names it: relative to the working folder where it lies
    under it (reports/records/...), else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
