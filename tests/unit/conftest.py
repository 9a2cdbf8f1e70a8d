"""Shared helpers for the suite's own tests."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def matrix_data() -> dict:
    """A fresh dict of compat/matrix.toml, for tests that change a piece of it."""
    return tomllib.loads((REPO / "compat" / "matrix.toml").read_text(encoding="utf-8"))


@pytest.fixture
def repo_env() -> dict[str, str]:
    """Environment for subprocesses that import the project."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def server_cell(tmp_path_factory):
    """transformers_server-base resolved and installed for real (its venv under .nox/test-cells
    is reused): the cell's python and environment."""
    from compat.cell import CellRun, Options, cell_env
    from compat.ladder import run_cell
    from compat.matrix import load
    from fixtures.ensure import build_fixtures

    cell = load().cell("transformers_server-base")
    build_fixtures(["tiny-llama"], 600, log=print)
    venv = REPO / ".nox" / "test-cells" / cell.id
    result = run_cell(cell, venv=venv, results_dir=tmp_path_factory.mktemp("results"),
                      log=print, options=Options(last_rung="install"))
    failed = result.first_failure
    assert failed is None, f"{failed.name}: {failed.error.text[-2000:] if failed.error else ''}"
    run = CellRun(cell=cell, venv=venv, options=Options(), log=print)
    return str(run.python), cell_env(run)
