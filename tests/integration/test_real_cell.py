"""transformers-numpy2 climbed for real, every rung, once for the tests in this file: a real
venv, a real install, the real engine on the real fixtures, the trained model's properties, the
bench; then reuse, an existing environment as a cell, and a run resumed at its bench rungs.
A file of its own, so that pytest-xdist runs it beside the other ladder tests, not before them.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from compat import reuse
from compat.cell import CellRun, Options
from compat.ladder import run_cell
from compat.matrix import load
from core.properties import TRAINED_MODEL
from core.results import SCHEMA_VERSION
from tests.conftest import REPO, TEST_CELLS, installed

VENVS = TEST_CELLS


REAL = Options(hypothesis_budget=3)
"""The real cell's options: every rung and property, 3 examples per generated-input property
(the ladder is what these tests are about; the broken-engine test holds the properties)."""


@pytest.fixture(scope="module")
def real_cell(tmp_path_factory):
    """transformers-numpy2 climbed for real, once for the tests below."""
    cell = installed("transformers-numpy2", tmp_path_factory.mktemp("installed")).cell
    out = tmp_path_factory.mktemp("results")
    return cell, out, run_cell(cell, venv=VENVS / cell.id, results_dir=out, log=print,
                               options=REAL)


@pytest.mark.slow
def test_real_cell_end_to_end(real_cell) -> None:
    cell, out, result = real_cell
    failed = result.first_failure
    assert failed is None, f"{failed.name}: {failed.error.text if failed.error else failed.reason}"
    assert result.versions["numpy"].startswith("2.")
    assert result.versions["torch"] == "2.13.0+cpu"
    properties = result.rung("conformance").detail.properties
    assert {"greedy_determinism", "batch_invariance", "streaming_equals_generate",
            "length_contract", "chat_template", "greedy_parity"} <= set(properties)
    assert all(p.status in ("pass", "skip") for p in properties.values())
    assert properties["greedy_parity"].status == "pass"
    # the trained model's properties all pass on the real engine: the broken engines are held
    # only to the one each is built to break (tests/integration/test_suite_catches_bugs.py); its
    # quality on real text is the quant axis's to measure (a cell without one skips it)
    assert {p: properties[p].status for p in TRAINED_MODEL} == {
        **dict.fromkeys(TRAINED_MODEL, "pass"), "text_quality": "skip"}
    metrics = {m.name: m for m in result.rung("bench").detail.metrics}
    assert len(metrics["decode_tokens_per_s"].samples) >= 5
    assert metrics["decode_tokens_per_s"].stats.median > 0
    assert result.rung("bench").detail.decode_bounds[0].fraction > 0
    saved = json.loads((out / f"{cell.id}.json").read_text())
    lock = saved["rungs"][0]["detail"]["lock"]  # since schema 2: the resolve rung's record
    assert saved["schema"] == SCHEMA_VERSION and lock.count("==") == len(result.versions)
    roof = next(r for r in saved["rungs"] if r["name"] == "bench")["detail"]["roofline"]
    assert "decode_batch1" not in roof  # schema 4: the rows are derived, never stored


@pytest.mark.slow
def test_an_unchanged_cell_is_reused_and_a_change_climbs_again(real_cell) -> None:
    """The second run of the same cell: its resolve rung runs, nothing it depends on changed, so
    the earlier result stands (stamped as reused); forcing it, or changing an option that changes
    results, would climb again."""
    cell, out, first = real_cell
    lines: list[str] = []
    again = run_cell(cell, venv=VENVS / cell.id, results_dir=out, log=lines.append, options=REAL)
    assert again.reused_at and again.finished_at == first.finished_at
    assert [r.status for r in again.rungs] == [r.status for r in first.rungs]
    assert any("reused: nothing it depends on changed" in line for line in lines), lines
    assert {"lock", "cell", "fixtures", "code", "machine", "options"} <= set(again.inputs)
    assert again.climbed_to == "bench"
    saved = json.loads((out / f"{cell.id}.json").read_text())
    assert saved["reused_at"] == again.reused_at
    run = CellRun(cell=cell, venv=VENVS / cell.id, options=REAL, log=print)
    assert reuse.reusable(run, reuse.last_result(out, cell.id), again.inputs)
    forced = dataclasses.replace(run, options=dataclasses.replace(REAL, force=("transformers-*",)))
    assert not reuse.reusable(forced, reuse.last_result(out, cell.id), again.inputs)
    other = dataclasses.replace(run, options=Options(hypothesis_budget=11))
    changed = reuse.inputs_of(other.__class__(cell=cell, venv=run.venv, options=other.options,
                                               log=print), again)
    assert reuse.changed(again, changed) == ["options"]
    assert not reuse.reusable(other, reuse.last_result(out, cell.id), changed)


@pytest.mark.slow
def test_an_existing_environment_is_a_cell(real_cell, tmp_path) -> None:
    """nox -s here: the real cell's venv taken as an environment that is already there (as a GPU
    machine's Python would be): resolve and install not run, its versions read from it as the
    lock, the engine imported and loaded in it, the result marked as that environment."""
    from compat.here import existing_cell, run_here

    cell, _, _ = real_cell
    python = VENVS / cell.id / "bin" / "python"
    here = existing_cell(load(), "transformers", "cpu", None, "transformers-numpy2")
    assert here.id == "transformers-here-transformers-numpy2" and here.dtype == "float32"
    result = run_here(here, python, results_dir=tmp_path,
                      options=Options(last_rung="conformance", properties=("greedy_determinism",)))
    rungs = {r.name: r for r in result.rungs}
    assert [rungs[n].status for n in ("resolve", "install")] == ["not_run", "not_run"]
    assert rungs["resolve"].reason == "existing environment"
    assert result.versions["torch"] == "2.13.0+cpu" and "transformers" in result.versions
    assert rungs["install"].detail.venv == str(VENVS / cell.id)
    assert [rungs[n].status for n in ("import", "load", "conformance")] == ["pass"] * 3
    assert rungs["conformance"].detail.properties["greedy_determinism"].status == "pass"
    saved = json.loads((tmp_path / f"{here.id}.json").read_text())
    assert saved["cell"]["existing"] == "transformers-numpy2" and saved["cell"]["dtype"] == "float32"
    # bad input is named with the valid values, before anything runs
    for argv, said in ((["--engine", "llama_cpp", "--device", "cuda"], "runs on cpu, not 'cuda'"),
                       (["--engine", "transformer"], "Did you mean 'transformers'"),
                       (["--engine", "transformers", "--dtype", "int3"], "not 'int3'"),
                       (["--engine", "transformers", "--python", "/no/python"], "is not a file")):
        done = subprocess.run([sys.executable, "-m", "compat.here", *argv], capture_output=True,
                              text=True, cwd=REPO, check=False)
        assert done.returncode == 2 and said in done.stderr, (argv, done.stderr)


@pytest.mark.slow
def test_a_run_interrupted_before_its_bench_rungs_resumes_there(real_cell, tmp_path) -> None:
    """A result written by the climbing pass (climbed to api) stands in for that pass on the
    next run, and the bench pass then runs its bench rung; a whole run's result needs bench."""
    cell, _, first = real_cell
    partial = dataclasses.replace(first, climbed_to="api")
    (tmp_path / f"{cell.id}.json").write_text(partial.to_json())
    climbing = CellRun(cell=cell, venv=VENVS / cell.id, options=dataclasses.replace(REAL, last_rung="api"),
                       log=print)
    whole = dataclasses.replace(climbing, options=REAL)
    saved = reuse.last_result(tmp_path, cell.id)
    assert reuse.reusable(climbing, saved, first.inputs)
    assert not reuse.reusable(whole, saved, first.inputs)
