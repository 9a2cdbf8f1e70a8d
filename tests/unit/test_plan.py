"""compat/plan.py: which cells `nox -s bench` measures, and where the real-size shape runs."""

from __future__ import annotations

from compat.ladder import describe
from compat.matrix import load
from compat.plan import bench_cells, real_size_cells
from core.results import RUNGS, CellResult, Rung, machine_info, save


def result(cell, failing: str = "") -> CellResult:
    rungs = [Rung(name, "fail" if name == failing else "pass") for name in RUNGS]
    return CellResult(cell=describe(cell), machine=machine_info(), started_at="now", rungs=rungs)


def test_bench_measures_each_engines_last_cell_that_passed_every_rung(tmp_path) -> None:
    matrix = load()
    default = {c.id: c for c in matrix.selected("default")}
    for cid in ("transformers-numpy1", "transformers-numpy2", "llama_cpp-numpy2"):
        save(result(default[cid]), tmp_path)
    save(result(default["sentence_transformers-numpy2"], failing="conformance"), tmp_path)
    chosen = {c.engine.id: c.id for c in bench_cells(matrix, tmp_path)}
    assert chosen == {"transformers": "transformers-numpy2", "llama_cpp": "llama_cpp-numpy2"}
    assert bench_cells(matrix, tmp_path / "none") == []


def test_the_real_size_shape_runs_on_cuda_cells_else_the_reference_engines() -> None:
    cells = [c for c in load().cells
             if c.id in ("transformers-numpy2", "llama_cpp-numpy2") or c.device == "cuda"]
    assert {c.id for c in real_size_cells(cells, cuda=False)} == {"transformers-numpy2"}
    on_gpu = real_size_cells(cells, cuda=True)
    assert on_gpu and all(c.device == "cuda" and c.engine.kind == "generation" for c in on_gpu)


def test_one_cell_per_wheel_builds_first_and_the_others_that_need_it_climb_last() -> None:
    from compat.drive import climbing_order

    cells = list(load().selected("default"))
    order = [c.id for c in climbing_order(cells)]
    llama = [c.id for c in cells if c.engine.build_wheels]
    assert len(llama) >= 2 and sorted(order) == sorted(c.id for c in cells)
    assert order[0] == llama[0] and order[-len(llama) + 1:] == llama[1:]
