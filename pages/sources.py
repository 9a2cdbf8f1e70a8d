"""Where a page's figures come from: each measured figure a page prints is cited as it is
formatted (the record file, the metric and its shape, the statistic, the format), and the
renderer writes the citations beside the page (THROUGHPUT.md -> THROUGHPUT.sources.json), in the
page's order, each with the table cell that prints it and its record's path relative to the
page's folder (records/real-shape/...). `python -m pages.audit` reads them back: each figure
recomputed from the raw samples of its record, and found in the cell that printed it (a figure
edited by hand, or a record whose samples changed, is a finding).

    with citing() as cited:         # while one page is built
        text = cite(result, metric, "median", ",.1f")
    write_sources(out / "THROUGHPUT.md", cited)
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from core.bench_details import MetricRecord
from pages.markdown import fmt

SUFFIX = ".sources.json"
STATS = ("median", "p50", "p90", "p95", "p99", "min", "max")
"""The statistics a citation may name, recomputed from the samples: bench/stats.Stats fields,
and any "pNN" (a latency's percentile; "p50" is a distribution's middle, where "median" is the
middle of a measurement's rounds, which carries the noise flag)."""


def statistic(samples: list[float], stat: str) -> float:
    """`stat` of raw samples, as bench/stats computes it."""
    from bench.stats import percentile, summarize

    if stat not in STATS:
        raise ValueError(f"stat {stat!r} is not one of {', '.join(STATS)}")
    if stat.startswith("p"):
        return percentile(samples, float(stat[1:]))
    return getattr(summarize(samples), stat)

_CITED: contextvars.ContextVar[list[dict] | None] = contextvars.ContextVar("cited", default=None)


def percent(fraction: float) -> str:
    """A fraction of a limit as the pages print it: one decimal, two significant figures under
    1% ("0.0%" would read as nothing reached)."""
    return f"{fraction * 100:.2g}%" if 0 < fraction < 0.01 else f"{fraction:.1%}"


def formatted(value: float, spec: str) -> str:
    """A figure as the page prints it: a Python format spec (",.1f"), "ms:SPEC" for seconds
    printed as milliseconds, "pct" for a fraction (percent), or "unit:U" for the throughput
    tables' `fmt` (seconds as ms or s, rates with their unit)."""
    if spec == "pct":
        return percent(value)
    if spec.startswith("ms:"):
        return f"{value * 1e3:{spec.removeprefix('ms:')}}"
    if spec.startswith("unit:"):
        return fmt(value, spec.removeprefix("unit:"))
    return f"{value:{spec}}"


def cite(result: object, metric: MetricRecord, stat: str, spec: str, load_run: int | None = None, *,
         limit: dict | None = None) -> str:
    """`stat` of `metric` formatted with `spec`, cited where a page is being built. `result` is
    what was read from a record file (a CellResult, or a load record: its `source`); a serving
    figure names its load run (`load_run`: its index in the serve_bench rung's runs); a fraction
    names the limit it divides by (`limit`: its "scale" and what it is, cite_fraction)."""
    value = statistic(metric.samples, stat) if metric.samples else getattr(metric.stats, stat)
    text = formatted(value * (limit["scale"] if limit else 1.0), spec)
    cited = _CITED.get()
    source = getattr(result, "source", "")
    if cited is not None and source:
        cited.append({"text": text, "record": str(Path(source).resolve()), "metric": metric.name,
                      "params": dict(metric.params), "stat": stat, "format": spec,
                      **({"load_run": load_run} if load_run is not None else {}),
                      **({"scale": limit["scale"], "limit": limit["limit"]} if limit else {})})
    return text


def cite_fraction(result: object, metric: MetricRecord, per_unit: float, limit: float,
                  device: str) -> str:
    """A median against a limit, as a percent, cited with the limit it divides by: MBU is the
    decode median × bytes a token (`per_unit`) ÷ the read bandwidth (`limit`, bytes/s) of
    `device`. The audit recomputes it and holds a table to one limit a device."""
    return cite(result, metric, "median", "pct", limit={
        "scale": per_unit / limit, "limit": {"device": device, "bytes_per_s": limit}})


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


CELL_SPLIT = re.compile(r"(?<!\\)\|")
"""Where a Markdown table row splits into cells (a "|" inside a value is escaped)."""


def token(text: str) -> re.Pattern:
    """A figure as a whole: not the middle of a longer number."""
    return re.compile(rf"(?<![\d.,]){re.escape(text)}(?![\d.,])")


def table_cells(page: str) -> list[tuple[int, int, str]]:
    """(line number, cell index, text) of every cell of every table row, in the page's order."""
    return [(n, i, cell) for n, line in enumerate(page.splitlines(), 1) if line.startswith("|")
            for i, cell in enumerate(CELL_SPLIT.split(line))]


def locate(page: str, cited: list[dict]) -> list[dict]:
    """Each citation with the table cell it was printed in (`line`, `cell`): the first cell at or
    after the previous citation's that holds it whole, the page's order being the render's."""
    cells, at, placed = table_cells(page), 0, []
    for figure in cited:
        found = next((k for k in range(at, len(cells)) if token(figure["text"]).search(cells[k][2])),
                     None)
        if found is None:
            raise ValueError(f"cited figure {figure['text']!r} ({figure['metric']}) is in no table "
                             "cell after the one before it: a page must print what it cites")
        at = found
        placed.append({**figure, "line": cells[found][0], "cell": cells[found][1]})
    return placed


def write_sources(page: Path, cited: list[dict], text: str, base: Path) -> None:
    """The page's citations beside it, each with the table cell that prints it and its record's
    path from `base`, the folder the committed page lies in (reports/: records/...), wherever
    this render was written (none: no file, and an old one removed)."""
    from core.results import write_atomic

    path = sources_path(page)
    if not cited:
        path.unlink(missing_ok=True)
        return
    figures = [{**f, "record": os.path.relpath(f["record"], base)} for f in locate(text, cited)]
    write_atomic(path, json.dumps({"page": page.name, "figures": figures}, indent=1) + "\n")
