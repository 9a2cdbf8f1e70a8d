"""The rungs of the ladder, one module each, in the order a cell climbs them.

A rung is a function from the cell's `CellRun` to a `Rung` record; a failure it
can name is raised as `RungFailed`, anything else it raises is caught by the
driver (compat/ladder.py). To add a rung: a module here, a line in LADDER, its
name in core/results.RUNGS, and its record in core/details.DETAILS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compat.cell import CellRun
from compat.rungs.bench import bench
from compat.rungs.conformance import api, conformance
from compat.rungs.import_engine import import_engine
from compat.rungs.install import install
from compat.rungs.load import load
from compat.rungs.resolve import resolve
from core.results import Rung


@dataclass(frozen=True)
class Step:
    """One rung of the ladder."""

    name: str
    climb: Callable[[CellRun], Rung]
    on_device: bool = True
    """Needs the cell's device: on a machine without it (CUDA) the rung is not run."""
    runs_after: tuple[str, ...] = ()
    """Rungs whose failure does not stop this one: a server's API surface is checked even when
    some of its engine properties failed, and a server whose API departs is still measured."""
    in_worker: bool = False
    """Climbed by the cell's worker (compat/rungs/worker.py), one process for all such rungs."""
    builds_env: bool = False
    """Makes the cell's environment: in an existing one (compat/here.py) it is not run, and
    compat/rungs/existing.py records what the environment holds instead."""


LADDER: tuple[Step, ...] = (
    Step("resolve", resolve, on_device=False, builds_env=True),
    Step("install", install, builds_env=True),
    Step("import", import_engine, in_worker=True),
    Step("load", load, in_worker=True),
    Step("conformance", conformance, in_worker=True),
    Step("api", api, runs_after=("conformance",), in_worker=True),
    Step("bench", bench, runs_after=("api",)),
)
STEPS = {step.name: step for step in LADDER}
