"""The load rung: build any missing fixture (and its parity reference), then the cell's worker
loads each of the engine's fixtures once (incell/probe.py)."""

from __future__ import annotations

from compat.cell import CellRun, RungFailed
from compat.rungs.worker import climb_in_worker
from core.results import Rung
from fixtures.catalog import PACKAGED
from fixtures.ensure import FixtureBuildError, build_fixtures, build_parity_references


def load(run: CellRun) -> Rung:
    """Build what is missing (a build failure is this rung's), then load every fixture."""
    built = [name for name in run.cell.fixtures if name not in PACKAGED]
    try:
        build_fixtures(built, run.limits.load, run.log)
        if run.cell.engine.kind == "generation":
            build_parity_references(built, run.limits.load, run.log)
    except FixtureBuildError as exc:
        raise RungFailed(exc.error, exc.reason) from exc
    return climb_in_worker(run, "load")
