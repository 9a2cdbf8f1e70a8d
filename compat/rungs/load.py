"""The load rung: build any missing fixture (and its parity reference), then load each of the
engine's fixtures once inside the cell."""

from __future__ import annotations

from compat.cell import CellRun, RungFailed
from compat.rungs.probe import probe
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
    return probe(run, "load", *(arg for name in run.cell.fixtures for arg in ("--fixture", name)))
