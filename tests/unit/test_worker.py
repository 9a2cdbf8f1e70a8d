"""The cell's worker (incell/worker.py, driven by compat/rungs/worker.py): rungs climbed one
after another in one process, each outcome a typed record; a rung that hangs past its limit or
kills the interpreter is that rung's result, with its signature and what the worker printed, its
process group is gone, and the next rung starts a fresh worker.

The engines are tests/broken/lifecycle.py's, run as "module:Class" in the suite's own venv (the
worker's interpreter here is the test's: a venv folder whose python is this one)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from compat.cell import CellRun, Limits, Options, RungFailed
from compat.ladder import climb
from compat.rungs import STEPS
from compat.rungs.worker import climb_in_worker, stop
from core.details import ImportDetail
from fixtures.catalog import built_dir
from fixtures.manifest import write_manifest
from tests.unit.test_proc import all_gone


@pytest.fixture
def cell_of(tmp_path, monkeypatch):
    """A CellRun for a broken engine class, its venv's python this interpreter, a fixture in a
    cache of its own (a folder the engine never reads)."""
    monkeypatch.setenv("INFERMATRIX_CACHE", str(tmp_path / "cache"))
    model = built_dir("tiny-llama")
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    write_manifest(model)
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, tmp_path / "venv" / "bin" / "python")

    def make(engine_class: str, **limits: float) -> CellRun:
        cell = SimpleNamespace(id="broken", device="cpu", dtype="float32", axes=(),
                               fixtures=("tiny-llama",), harness_apart=(),
                               engine=SimpleNamespace(id=f"tests.broken.lifecycle:{engine_class}",
                                                      kind="generation", transport="in_process"))
        return CellRun(cell=cell, venv=tmp_path / "venv", options=Options(limits=Limits(**limits)),
                       log=print)

    return make


def test_rungs_share_one_worker_and_come_back_typed(cell_of) -> None:
    run = cell_of("Stalls")
    first = climb(run, STEPS["import"])
    assert first.status == "pass" and isinstance(first.detail, ImportDetail)
    assert first.detail.class_ == "tests.broken.lifecycle.Stalls"
    pid = run.worker.tool.proc.pid
    again = climb_in_worker(run, "import")
    assert again.status == "pass" and run.worker.tool.proc.pid == pid, "one worker per cell"
    done = stop(run)
    assert done.returncode == 0 and run.worker is None
    assert all_gone([pid])


def test_a_rung_past_its_limit_is_a_timeout_and_its_worker_is_gone(cell_of) -> None:
    run = cell_of("Stalls", load=2)
    assert climb_in_worker(run, "import").status == "pass"
    pid = run.worker.tool.proc.pid
    with pytest.raises(RungFailed) as failed:
        climb_in_worker(run, "load")
    error = failed.value.error
    assert error.signature == "Timeout: load > 2s"
    assert "loading, and never done" in error.text
    assert run.worker is None and all_gone([pid])


def test_a_worker_killed_mid_rung_names_that_rung_and_the_next_starts_afresh(cell_of) -> None:
    run = cell_of("DiesLoading")
    assert climb(run, STEPS["import"]).status == "pass"
    pid = run.worker.tool.proc.pid
    with pytest.raises(RungFailed) as failed:  # (the driver's fixture build is not the subject)
        climb_in_worker(run, "load")
    error = failed.value.error
    assert error.type == "ProcessCrashed"
    assert "the cell's worker died without a result (exit status -9)" in error.message
    assert "about to die" in error.text
    assert all_gone([pid])
    assert climb_in_worker(run, "import").status == "pass"
    assert run.worker.tool.proc.pid != pid
    stop(run)


def test_an_exception_in_a_rung_is_its_failure_and_the_worker_goes_on(cell_of) -> None:
    run = cell_of("NoSuchClass")
    failed = climb(run, STEPS["import"])
    assert failed.status == "fail"
    assert failed.error.signature.startswith("AttributeError")
    assert "NoSuchClass" in failed.error.message and "Traceback" in failed.error.text
    assert run.worker.tool.running(), "an exception is a result, not the worker's end"
    stop(run)
    assert Path(run.work / "worker" / "import.json").is_file()
