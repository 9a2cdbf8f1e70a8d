"""The import rung: does engines/<id>.py (and so the engine library) import in the cell?"""

from __future__ import annotations

from compat.cell import CellRun
from compat.rungs.worker import climb_in_worker
from core.results import Rung


def import_engine(run: CellRun) -> Rung:
    """The cell's worker imports the adapter (incell/probe.py) and records what it declares."""
    return climb_in_worker(run, "import")
