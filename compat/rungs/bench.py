"""The bench rung: incell/throughput/run.py in the cell, on the engine's first fixture."""

from __future__ import annotations

from compat.cell import CellRun, RungFailed, run_in_cell
from compat.rungs.worker import cell_ask
from core.proc import error_from_output
from core.results import ErrorInfo, Rung


def bench(run: CellRun) -> Rung:
    """The starter benchmark (the quick profile unless the run passes others)."""
    if not run.python.exists():
        raise RungFailed(ErrorInfo.from_message(
            "MissingVenv", f"{run.venv} does not exist: run nox -s 'cell({run.cell.id})' first"))
    ask = cell_ask(run, fixtures=run.cell.fixtures[:1], bench_args=tuple(run.options.bench_args))
    done = run_in_cell(run, "bench", "incell.throughput.run", ["--ask", ask.arg()])
    if done.rung is None:
        raise RungFailed(error_from_output("BenchError", done.tool))
    if done.rung.error is not None:
        done.rung.error.text = done.tool.output  # the benchmark session's own words too
    return done.rung
