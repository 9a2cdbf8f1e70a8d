"""Which cells a session runs, and what it checks before building anything: the policy the
noxfile's sessions follow, kept here where the tests reach it. Stdlib only (the driver's)."""

from __future__ import annotations

from pathlib import Path

from compat.matrix import RELEASES, Cell, Matrix
from compat.reuse import last_result

REFERENCE_ENGINE = "transformers"
"""The engine the parity references come from (fixtures/parity.py): on a CPU-only machine the
real-size shape is measured in its cells."""


def check_pins(cells: list[Cell]) -> None:
    """A pin (or an engine release) that was never published stops here, naming it."""
    from compat.index import check_pin

    for cell in cells:
        named = [f"{cell.engine_package}=={cell.release}"] \
            if cell.release not in ("", *RELEASES) else []
        for pin in (*cell.pins, *named):
            check_pin(pin, cell.python)


def bench_cells(matrix: Matrix, results_dir: Path) -> list[Cell]:
    """Per engine of the default selection, its last cell (by id) whose every rung passed in
    the results of an earlier run."""
    chosen: dict[str, Cell] = {}
    for cell in matrix.selected("default"):
        result = last_result(results_dir, cell.id)
        if result is not None and result.first_failure is None and result.rung("bench"):
            chosen[cell.engine.id] = cell
    return list(chosen.values())


def real_size_cells(cells: list[Cell], cuda: bool) -> list[Cell]:
    """Where the real-size shape runs, among the benchmarked cells: the CUDA generation cells
    where CUDA is present, else the reference engine's CPU cells."""
    if cuda:
        return [c for c in cells if c.device == "cuda" and c.engine.kind == "generation"]
    return [c for c in cells if c.device == "cpu" and c.engine.id == REFERENCE_ENGINE]
