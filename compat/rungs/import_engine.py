"""The import rung: does engines/<id>.py (and so the engine library) import in the cell?"""

from __future__ import annotations

from compat.cell import CellRun
from compat.rungs.probe import probe
from core.results import Rung


def import_engine(run: CellRun) -> Rung:
    """compat/probe.py imports the adapter inside the cell and records what it declares."""
    return probe(run, "import")
