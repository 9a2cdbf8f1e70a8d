"""The driver's side of the cell's worker (incell/worker.py): started by the first rung that runs
inside the cell, then asked for one rung at a time, each under its own limit.

A rung's limit runs from the request to the worker's record. Past it, or when the worker dies
without a record, the worker's whole process group (and any server it registered) is killed and
the rung records a Timeout or a ProcessCrashed carrying what the worker printed during that rung;
a later rung starts a fresh worker. The ladder stops the worker when the cell ends.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from compat.cell import CellRun, RungFailed, cell_env
from core.ask import Ask
from core.proc import Tool, ToolRun, timeout_error
from core.results import ErrorInfo, Rung, read_rung, write_atomic

STOP_GRACE_S = 10.0


@dataclass
class Worker:
    """A running incell.worker and the folder it is asked through."""

    tool: Tool
    folder: Path


def cell_ask(run: CellRun, **changes) -> Ask:
    """The cell's engine, device and fixtures as an Ask (core/ask.py), with `changes`."""
    return Ask(**{"engine": run.cell.engine.id, "device": run.cell.device,
                  "fixtures": tuple(run.cell.fixtures), **changes})


def start(run: CellRun) -> Worker:
    folder = run.work / "worker"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    tool = Tool([str(run.python), "-m", "incell.worker", "--dir", str(folder),
                 "--ask", cell_ask(run).arg()], env=cell_env(run))
    return Worker(tool, folder)


def climb_in_worker(run: CellRun, rung: str, ask: Ask | None = None) -> Rung:
    """Have the cell's worker (started now if none runs) climb `rung`, asked `ask` (default: the
    cell's engine, device and fixtures), and return its record."""
    worker = run.worker = run.worker or start(run)
    record = worker.folder / f"{rung}.json"
    record.unlink(missing_ok=True)
    since = len(worker.tool.output())
    limit = run.limits.of(rung)
    deadline = time.monotonic() + limit
    write_atomic(worker.folder / f"{rung}.go", (ask or cell_ask(run)).arg())
    while not record.is_file():
        if not worker.tool.running() and not record.is_file():
            done = stop(run, grace=0)
            message = f"the cell's worker died without a result (exit status {done.returncode})"
            raise RungFailed(ErrorInfo.from_message("ProcessCrashed", message, done.output[since:]))
        if time.monotonic() > deadline:
            done = stop(run, grace=0)
            raise RungFailed(timeout_error(rung, limit, done.output[since:]))
        with contextlib.suppress(subprocess.TimeoutExpired):  # still running: look again
            worker.tool.proc.wait(timeout=0.05)
    outcome = read_rung(record)
    if outcome.error is not None and outcome.error.type == "ConformanceCrash":
        outcome.error.text = worker.tool.output()[since:]  # pytest's own words
    return outcome


def stop(run: CellRun, grace: float = STOP_GRACE_S) -> ToolRun | None:
    """End the cell's worker: asked to (DIR/done.go) and given `grace` seconds, then killed with
    its group and the groups it registered. The ToolRun of how it ended, or None if none ran."""
    worker, run.worker = run.worker, None
    if worker is None:
        return None
    if grace:
        write_atomic(worker.folder / "done.go", "{}")
    return worker.tool.finish(timeout=grace if grace else None)
