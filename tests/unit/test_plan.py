"""compat/plan.py: which cells `nox -s bench` measures, and what the real-shape run runs."""

from __future__ import annotations

import pytest

from compat.cli import UsageError
from compat.ladder import describe
from compat.matrix import load
from compat.plan import ALL_CORES, REAL_SHAPE_LEFT_OUT, bench_cells, pick_runs, real_shape_runs
from core.errors import MatrixError
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


def test_the_real_shape_runs_every_generation_engine_in_each_precision() -> None:
    matrix = load()
    runs = real_shape_runs(matrix, cuda=False, cores=4)
    labels = [r.label for r in runs]
    assert len(labels) == len(set(labels)), labels
    engines = {r.cell.engine.id for r in runs}
    generation = {c.engine.id for c in matrix.selected("default") if c.engine.kind == "generation"}
    assert generation | {"vllm"} <= engines  # every default generation engine, and vLLM
    assert all(r.cell.device == "cpu" and r.cell.engine.kind == "generation" for r in runs)
    precisions = {(r.cell.engine.id, dict(r.cell.axes).get("quant")) for r in runs}
    assert {("llama_cpp", q) for q in ("none", "f16", "q8_0", "q4_k_m")} <= precisions
    assert not precisions & set(REAL_SHAPE_LEFT_OUT)
    every_core = [r for r in runs if r.variant == ALL_CORES]
    assert [r.cell.id for r in every_core] == ["vllm-quantnone"]
    assert dict(every_core[0].env) == {"VLLM_CPU_OMP_THREADS_BIND": "0-3",
                                       "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    on_gpu = real_shape_runs(matrix, cuda=True)
    assert on_gpu and all(r.cell.device == "cuda" for r in on_gpu)
    # on the trained model, the GGUF its package ships runs too (a shape has no such file)
    trained = {r.cell.id for r in real_shape_runs(matrix, cuda=False, trained=True)}
    assert trained - {r.cell.id for r in runs} == {"llama_cpp-quantshipped"}


def test_a_trained_run_against_random_weights_measures_each_engine_on_both_in_turn() -> None:
    """--against-random: one run, each engine on the trained model then on its shape's random
    weights (so the trained ÷ random table sets rows of one run against each other); the
    shipped GGUF, the trained model's own weights, on the trained model alone."""
    from compat.cli import real_shape_args
    from compat.plan import shape_steps

    args = real_shape_args(["--shape", "smollm2-135m-instruct", "--against-random"])
    assert args.shapes == ("smollm2-135m-instruct", "smollm2-135m-shape")
    runs = pick_runs(real_shape_runs(load(), cuda=False, trained=True),
                     ["llama_cpp-quantnone", "llama_cpp-quantshipped"])
    steps = [(one.cell.id, on) for one, on in shape_steps(runs, *args.shapes)]
    assert steps == [("llama_cpp-quantnone", "smollm2-135m-instruct"),
                     ("llama_cpp-quantnone", "smollm2-135m-shape"),
                     ("llama_cpp-quantshipped", "smollm2-135m-instruct")]
    assert shape_steps(runs, "smollm2-135m-instruct") == [(r, "smollm2-135m-instruct") for r in runs]
    with pytest.raises(UsageError, match="not a trained model; give --shape smollm2-135m-instruct"):
        real_shape_args(["--against-random"])


def test_a_real_shape_run_is_chosen_by_glob_and_a_glob_matching_none_is_named() -> None:
    runs = real_shape_runs(load(), cuda=False)
    assert {r.cell.id for r in pick_runs(runs, ["llama_cpp-*"])} == {
        "llama_cpp-quantnone", "llama_cpp-quantf16", "llama_cpp-quantq8_0", "llama_cpp-quantq4_k_m"}
    assert pick_runs(runs, []) == runs
    with pytest.raises(MatrixError, match=r"lama_cpp-.*llama_cpp-quantnone"):
        pick_runs(runs, ["lama_cpp-*"])


def test_the_compile_starts_first_then_one_cell_per_engine_and_the_wheels_waiters_last() -> None:
    from compat.drive import climbing_order

    cells = list(load().selected("default"))
    order = climbing_order(cells)
    ids = [c.id for c in order]
    engines = list(dict.fromkeys(c.engine.id for c in cells))
    llama = [c.id for c in cells if c.engine.build_wheels]
    assert len(llama) >= 2 and sorted(ids) == sorted(c.id for c in cells)
    # the compile starts at once, in the cell the trained model runs in
    assert ids[0] == "llama_cpp-numpy2" and order[0].trained
    # every engine's headline cell before any engine's second
    assert sorted(c.engine.id for c in order[:len(engines)]) == sorted(engines)
    assert "transformers-numpy2" in ids[:len(engines)] and "infinity_emb-numpy2" in ids[:len(engines)]
    # the other cells needing the wheel last, holding no worker on the compile's lock
    assert ids[-len(llama) + 1:] == [i for i in llama if i != ids[0]]


def test_the_longest_climbs_start_first_from_the_committed_durations(tmp_path) -> None:
    """After the compile (the longest chain), the headline cells shortest first (answers come
    soon), then the other cells longest first (the climb ends soonest); a cell with no record
    counts as the median."""
    from compat.drive import climbing_order, committed_durations
    from tests.conftest import REPO

    cells = list(load().selected("default"))
    durations = committed_durations(REPO / "reports" / "results.json")
    assert set(durations) >= {c.id for c in cells} and all(v > 0 for v in durations.values())
    order = climbing_order(cells, durations)
    engines = len({c.engine.id for c in cells})
    heads, rest = order[1:engines], order[engines:]
    assert [durations[c.id] for c in heads] == sorted(durations[c.id] for c in heads)
    plain = [c for c in rest if not c.engine.build_wheels]
    assert [durations[c.id] for c in plain] == sorted((durations[c.id] for c in plain), reverse=True)
    assert order[0].id == "llama_cpp-numpy2" and order[-1].engine.build_wheels
    # a made-up timing moves a cell: the longest headline, said to be the shortest, goes first
    longest = heads[-1]
    moved = climbing_order(cells, {**durations, longest.id: 0.0})
    assert moved[1] is longest
    # no record: the median stands in; no file at all: the matrix's order
    assert climbing_order(cells, {}) == climbing_order(cells)
    assert committed_durations(tmp_path / "missing.json") == {}


def test_a_quantization_run_starts_with_each_engines_unquantized_cpu_cell() -> None:
    from compat.drive import climbing_order

    cells = list(load().selected("quant"))
    first = climbing_order(cells)[:len({c.engine.id for c in cells})]
    assert {c.engine.id for c in first} == {c.engine.id for c in cells}
    assert all(c.device == "cpu" and dict(c.axes).get("quant") in ("none", "shipped")
               for c in first), [c.id for c in first]
