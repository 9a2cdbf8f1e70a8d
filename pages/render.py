"""Merge cell records into the reports: each page is a module of its own (compatibility,
conformance, engines, serving, quantization, throughput); this one reads the records, decides
which pages there is something for, and writes them with results.json.

A page is a pure function of its records: rendering reads the records folders given (and the
matrix), never the clock, the history or the output folder, so the committed reports/records/
re-render every committed page byte for byte (`python -m pages.publish --check`). `nox -s report` first
takes a run's results/ into reports/records/ (pages/records.py), then renders from there.

    python -m pages.render [RECORDS_DIR ...] [--out reports/]
    python -m pages.render results --out reports --live 3/34   while a run is going: the
        verdict pages (COMPATIBILITY.md, CONFORMANCE.md) and the site, nothing else

Any set of result files can be merged: one machine's results/, or the
artifacts of many CI jobs. Unreadable files are named in the report, not fatal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path

from compat.matrix import Matrix
from compat.matrix import load as load_matrix
from core import layout
from core.records import to_json
from core.results import CellResult, load_results, write_atomic
from core.run_limits import load_all as load_limits
from pages.compatibility import bisections, compatibility
from pages.conformance import conformance_page
from pages.engines import engines_page
from pages.headline import headline
from pages.loadgen import load_plot, load_records
from pages.markdown import newest
from pages.plots import grid_plot, latency_plot, throughput_plot
from pages.quantization import plot as quantization_plot
from pages.quantization import quantization_page
from pages.real_shape import load_real_shapes, load_serving, pareto_plot, real_shape_section
from pages.serving import checked, serving_page
from pages.sources import citing, write_sources
from pages.throughput import throughput
from pages.verdicts import foreign
from pages.watch import read_watch


def load_grid(folders: list[Path]) -> list[CellResult]:
    """The grid `nox -s bench` wrote (results/bench/*.json) in each folder; unreadable files are
    skipped."""
    grid, _ = load_results([p for folder in folders for p in sorted(Path(folder).rglob("*.json"))])
    return sorted(grid, key=lambda r: (r.cell.kind, r.cell.engine))


def cells_of(result_dirs: list[Path], matrix: Matrix | None) -> tuple[list[CellResult], list[str]]:
    """Every cell result in the folders given (the matrix's own), sorted, and the files or cells
    that could not be taken, named."""
    results, problems = load_results([p for d in result_dirs for p in sorted(Path(d).glob("*.json"))])
    results, skipped = foreign(results, matrix)
    results.sort(key=lambda r: (r.cell.kind, r.cell.engine, r.cell.env))
    return results, [*problems, *skipped]


def serving_pages(result_dirs: list[Path], out: Path, results: list[CellResult],
                  problems: list[str]) -> None:
    """SERVING.md: the servers' API surface, the endpoints, every load sweep in the folders."""
    load = [r for sub in (layout.SERVE_BENCH, layout.SERVE_BENCH_CHAT)
            for folder in layout.under(result_dirs, sub) for r in load_records(folder)]
    endpoints, unreadable = load_results(layout.files_under(result_dirs, layout.ENDPOINT))
    problems += unreadable
    load += [r.rung("serve_bench").detail for r in endpoints
             if r.rung("serve_bench") is not None and r.rung("serve_bench").detail is not None]
    if any(checked(r) for r in [*results, *endpoints]) or load:
        plot = "serving.png" if load_plot(load, out / "serving.png") else None
        with citing() as cited:
            page = serving_page([*results, *endpoints], problems, load, plot)
        write_atomic(out / "SERVING.md", page)
        write_sources(out / "SERVING.md", cited, page, records_base(result_dirs))


def records_base(result_dirs: list[Path]) -> Path:
    """Where a page's citations name their records from: the folder that holds the records
    folder (reports/ for reports/records/), as it lies beside the committed page."""
    return Path(result_dirs[0]).resolve().parent


def throughput_pages(result_dirs: list[Path], out: Path, results: list[CellResult],
                     problems: list[str], grid: list[CellResult]) -> None:
    """THROUGHPUT.md with its plots: the cells' bench rungs, the grid, the real shapes."""
    real, real_serving = [], []
    for shapes in layout.under(result_dirs, layout.REAL_SHAPE):
        runs, unreadable = load_real_shapes(shapes)
        real, real_serving, problems = real + runs, real_serving + load_serving(shapes), problems + unreadable
    if not (any(r.bench for r in [*results, *grid]) or real):
        return
    drawn = [(file, alt) for file, alt, draw, source in (
        ("throughput.png", "Medians with min-max whiskers, per cell", throughput_plot, results),
        ("latency.png", "Inter-token latency and TTFT distributions", latency_plot, results),
        ("grid.png", "The grid: throughput against batch size", grid_plot, grid),
    ) if draw(source, out / file)]
    pareto = "real-shape.png" if pareto_plot(real, out / "real-shape.png") else None
    recorded = {run: limits for folder in layout.under(result_dirs, layout.RUN)
                for run, limits in load_limits(folder).items()}
    with citing() as cited:
        page = throughput(results, problems, grid=grid, plots=drawn,
                          opening=real_shape_section(real, pareto, real_serving),
                          run_limits=recorded)
    write_atomic(out / "THROUGHPUT.md", page)
    write_sources(out / "THROUGHPUT.md", cited, page, records_base(result_dirs))


def render(result_dirs: list[Path], out: Path, *, matrix: Matrix | None = None,
           title: str = "Compatibility matrix", grid_dirs: list[Path] | None = None) -> list[CellResult]:
    """Every page there is something for and results.json, from the records folders given (their
    subfolders too: core/layout.py) and nothing else. `grid_dirs`: where the grid is (default:
    each folder's bench/). What changed since the previous run is the watch record the folders
    hold (pages/records.py wrote it when it took the run in)."""
    results, problems = cells_of(result_dirs, matrix)
    changed = read_watch(result_dirs)
    write_atomic(out / "COMPATIBILITY.md", compatibility(
        results, problems, matrix=matrix, title=title, extra=bisections(result_dirs), changed=changed,
        stack_dirs=result_dirs))
    if any(r.properties() for r in results):
        write_atomic(out / "CONFORMANCE.md", conformance_page(results, problems))
    serving_pages(result_dirs, out, results, problems)
    if any(getattr(r.rung("import"), "status", "") == "pass" for r in results):
        write_atomic(out / "ENGINES.md", engines_page(results, problems))
    if any(r.quantization is not None for r in results):
        plotted = quantization_plot(results, out / "quantization.png")
        with citing() as cited:
            page = quantization_page(results, problems, plotted)
        write_atomic(out / "QUANTIZATION.md", page)
        write_sources(out / "QUANTIZATION.md", cited, page, records_base(result_dirs))
    grid = load_grid(layout.under(result_dirs, layout.BENCH) if grid_dirs is None else grid_dirs)
    throughput_pages(result_dirs, out, results, problems, grid)
    merged = {"cells": [to_json(r) for r in results], "unreadable": problems,
              "generated": newest(results), "watch": changed}
    write_atomic(out / "results.json", json.dumps(merged, indent=1, sort_keys=True) + "\n")
    return results


def live_banner(landed: str) -> str:
    """The line a page carries while its run is going ("3/34": 3 of 34 cells have landed)."""
    done, _, total = landed.partition("/")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (f"⏳ A run is under way: {done} of {total} cells have landed (at {stamp} UTC). A row "
            "not landed yet is missing, or is the result of an earlier run; the bench figures, the "
            "other pages and the history come when the run ends.")


def render_live(result_dirs: list[Path], out: Path, landed: str, *, matrix: Matrix | None = None,
                title: str = "Compatibility matrix") -> list[CellResult]:
    """The verdicts so far, while a run is going: COMPATIBILITY.md and CONFORMANCE.md with a
    banner saying how many cells have landed, and the site (out/site) from the same results.
    results.json, the history and the bench pages are left as the last finished run wrote them."""
    from pages.site import build as build_site

    results, problems = cells_of(result_dirs, matrix)
    banner = live_banner(landed)
    title_line, _, rest = compatibility(results, problems, matrix=matrix,
                                        title=title).partition("\n")
    write_atomic(out / "COMPATIBILITY.md", f"{title_line}\n\n> {banner}\n{rest}")
    if any(r.properties() for r in results):
        title_line, _, rest = conformance_page(results, problems).partition("\n")
        write_atomic(out / "CONFORMANCE.md", f"{title_line}\n\n> {banner}\n{rest}")
    build_site(result_dirs, out, out / "site", matrix, banner=banner)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pages.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", type=Path, default=[Path("reports/records")],
                        help="folders of cell records (default: reports/records/)")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--matrix", type=Path, help="matrix whose [[known]] entries apply")
    parser.add_argument("--title", default="Compatibility matrix")
    parser.add_argument("--grid", type=Path, action="append", help="the grid of `nox -s bench` "
                        "(repeatable; default: each results folder's bench/, where it exists)")
    parser.add_argument("--live", metavar="LANDED/TOTAL", help="while a run is going: only the "
                        "verdict pages and the site, with a banner (e.g. 3/34 cells landed)")
    args = parser.parse_args(argv)
    for folder in args.results:
        if not folder.is_dir():
            parser.error(f"records folder {str(folder)!r} does not exist")
    if args.live is not None and not re.fullmatch(r"\d+/\d+", args.live):
        parser.error(f"--live {args.live!r}: give the cells landed and the total, e.g. 3/34")
    matrix = load_matrix(args.matrix) if args.matrix else None
    if args.live:
        render_live(args.results, args.out, args.live, matrix=matrix, title=args.title)
        return 0
    results = render(args.results, args.out, matrix=matrix, title=args.title, grid_dirs=args.grid)
    from rich.console import Console

    changed = json.loads((args.out / "results.json").read_text(encoding="utf-8"))["watch"]
    Console().print(headline(results, changed, args.out, matrix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
