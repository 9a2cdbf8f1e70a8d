"""The import and load rungs' shared step: compat/probe.py inside the cell, its record a Rung."""

from __future__ import annotations

from compat.cell import CellRun, RungFailed, run_in_cell
from core.results import ErrorInfo, Rung


def probe(run: CellRun, rung: str, *args: str) -> Rung:
    """Run `python -m compat.probe <rung>` in the cell and turn its record into a Rung."""
    done = run_in_cell(run, rung, "compat.probe", [rung, "--engine", run.cell.engine.id,
                                                   "--device", run.cell.device, *args])
    if done.record is None:
        message = f"the probe died without a result (exit status {done.tool.returncode})"
        raise RungFailed(ErrorInfo.from_message("ProcessCrashed", message, done.tool.output))
    record = done.record
    error = ErrorInfo(**record["error"]) if record["error"] else None
    return Rung(rung, record["status"], error=error, detail=record["detail"])
