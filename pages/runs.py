"""One comparison, one run: the pages' rows grouped by the run that measured them
(BenchDetail.run, core/timeline.run_id), and each held to its run's limits (core/run_limits.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from core.results import CellResult
from core.run_limits import RunLimits

T = TypeVar("T")


def held_to_run(results: list[CellResult], recorded: dict[str, RunLimits]) -> list[CellResult]:
    """Each result whose run recorded its limits (core/run_limits.py), its roofline dividing by
    them: the run's best read bandwidth, and its best peak in the row's dtype. One limit per run
    down every MBU and prefill-fraction column; a result of a run without a record keeps its
    own probe's. Copies: the records themselves are not changed."""
    held = []
    for r in results:
        detail = r.bench
        limits = recorded.get(detail.run) if detail is not None and detail.run else None
        roof = detail.roofline if detail is not None else None
        if limits is None or roof is None or roof.device != limits.device \
                or limits.bandwidth_gb_s is None:
            held.append(r)
            continue
        roof = dataclasses.replace(roof, bandwidth_gb_s=limits.bandwidth_gb_s, compute_tflops=(
            limits.peak_tflops(roof.compute_dtype) or roof.compute_tflops))
        detail = dataclasses.replace(detail, roofline=roof)
        copy = dataclasses.replace(r, rungs=[
            dataclasses.replace(g, detail=detail) if g.name == "bench" else g for g in r.rungs])
        copy.source = getattr(r, "source", "")
        held.append(copy)
    return held


def limits_lines(results: list[CellResult], recorded: dict[str, RunLimits]) -> list[str]:
    """The runs' limits the rows below divide by, named once each."""
    runs = sorted({r.bench.run for r in results if r.bench and r.bench.run in recorded},
                  reverse=True)
    if not runs:
        return []
    return ["One limit per run: a row's MBU and prefill fraction divide by the limits its run "
            "read before its first bench rung and after its last (rows of earlier runs, by "
            "their own probe). " + " ".join(f"Run {run}: {recorded[run].named()}."
                                            for run in runs), ""]


def bench_run(result: CellResult) -> str:
    return result.bench.run


def by_run(items: list[T], run_of: Callable[[T], str] = bench_run) -> list[list[T]]:
    """The items grouped by the run that measured them (`run_of`: BenchDetail.run), the newest
    first; those of runs before run ids last, together."""
    ids = {run_of(item) for item in items}
    runs = sorted((r for r in ids if r), reverse=True) + [r for r in ids if not r]
    return [[item for item in items if run_of(item) == run] for run in runs]


def run_name(run: str) -> str:
    return f"Run {run}" if run else "Runs before run ids"


def under_runs(groups: list[list[CellResult]], tables: list[str]) -> list[str]:
    """Each run's table (`groups` in by_run's order) under its run's name where there are
    several."""
    if len(groups) == 1:
        return [tables[0], ""]
    lines = []
    for group, text in zip(groups, tables, strict=True):
        lines += [f"### {run_name(bench_run(group[0]))} ({len(group)} cells)", "", text, ""]
    return lines
